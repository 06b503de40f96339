import Foundation
import HerdwatchStore
import Hummingbird
import Logging

/// The web UI (server-rendered HTML, no scripts) and the query API, both over the store's views.
///
///     GET  /hosts                 the hosts registry: tags, level, last seen, rate, cost per day
///     GET  /alerts                alerts, newest first, each with a link to its responses
///     GET  /responses             response decisions and their outcomes, newest first
///     GET  /events                event search: filters or one SQL query, scoped by hosts and time
///     GET  /hunts                 saved hunts, each a link that runs it
///     GET  /process/{entity_id}   a process: its ancestors, its children, its events
///     GET  /api/v1/query?sql=...  the same queries as JSON (or `format=csv`); POST takes a JSON body
///     POST /api/v1/hosts/{host}/commands   an operator's command (see `ManualCommands`); the hosts
///                                 page and the process page have buttons for it
///
/// On 127.0.0.1 it is open to the host's users; bound elsewhere, every page and the query API need
/// a signed-in user (a session cookie from /login, or HTTP Basic for scripts) from the users file.
public struct WebConfiguration: Sendable {
    /// Nil: no sign-in (only allowed on a loopback address).
    public var users: UserDirectory?
    /// Rows a page shows at most.
    public var pageRows = 500

    public init(users: UserDirectory? = nil) { self.users = users }
}

public enum WebRoutes {
    /// `commands`: the command queue, for the operators' commands (the API and the UI's buttons);
    /// `hosts`: the hosts that have a token.
    public static func add(
        to router: Router<BasicRequestContext>, store: any FleetStore, configuration: WebConfiguration, commands: CommandIssuer? = nil,
        hosts: Set<String> = [], logger: Logger
    ) {
        let sessions = Sessions()
        if let users = configuration.users {
            addSignIn(to: router, users: users, sessions: sessions, logger: logger)
        }
        let pages = router.group()
        if let users = configuration.users {
            pages.add(middleware: SignedIn(users: users, sessions: sessions))
        }
        let ui = Pages(store: store, rows: configuration.pageRows, signIn: configuration.users != nil, commands: commands != nil)
        if let commands {
            let manual = ManualCommands(issuer: commands, store: store, hosts: hosts, signIn: configuration.users != nil)
            pages.post("/api/v1/hosts/{host}/commands") { request, context in
                try await manual.handle(request, host: context.parameters.get("host") ?? "")
            }
        }
        router.get("/") { _, _ in Response(status: .seeOther, headers: [.location: "/hosts"]) }
        pages.get("/hosts") { request, _ in try await ui.hosts(request) }
        pages.get("/alerts") { request, _ in try await ui.alerts(request) }
        pages.get("/responses") { request, _ in try await ui.responses(request) }
        pages.get("/events") { request, _ in try await ui.events(request) }
        pages.get("/hunts") { _, _ in try await ui.hunts() }
        pages.get("/process/{entity}") { _, context in
            try await ui.process(context.parameters.get("entity") ?? "")
        }
        pages.get("/api/v1/query") { request, _ in
            let parameters = request.uri.queryParameters
            return await ui.api(
                sql: parameters.get("sql") ?? "", hosts: parameters.get("hosts"), since: parameters.get("since"),
                until: parameters.get("until"), limit: parameters.get("limit").flatMap { Int($0) }, format: parameters.get("format"),
                search: parameters.get("search"))
        }
        pages.post("/api/v1/query") { request, _ in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any], let sql = object["sql"] as? String
            else {
                return Pages.json(.badRequest, ["error": "expected a JSON object with \"sql\" (and optional hosts, since, until, limit, format, search)"])
            }
            return await ui.api(
                sql: sql, hosts: object["hosts"] as? String, since: object["since"] as? String, until: object["until"] as? String,
                limit: object["limit"] as? Int, format: object["format"] as? String, search: object["search"] as? String)
        }
    }

    static func addSignIn(to router: Router<BasicRequestContext>, users: UserDirectory, sessions: Sessions, logger: Logger) {
        router.get("/login") { request, _ in
            Pages.page("Sign in", signOut: false, Pages.signInForm(next: request.uri.queryParameters.get("next") ?? "/hosts", failed: false))
        }
        router.post("/login") { request, _ in
            var request = request
            let form = Pages.form(String(buffer: try await request.collectBody(upTo: 64 << 10)))
            let name = form["user"] ?? ""
            let next = Pages.localPath(form["next"])
            guard users.verify(name: name, password: form["password"] ?? "") else {
                logger.warning("sign-in failed", metadata: ["user": "\(name)"])
                var response = Pages.page("Sign in", signOut: false, Pages.signInForm(next: next, failed: true))
                response.status = .unauthorized
                return response
            }
            logger.info("signed in", metadata: ["user": "\(name)"])
            var response = Response(status: .seeOther, headers: [.location: next])
            response.setCookie(Cookie(name: SignedIn.cookie, value: sessions.open(user: name), path: "/", httpOnly: true, sameSite: .strict))
            return response
        }
        router.post("/logout") { request, _ in
            if let id = request.cookies[SignedIn.cookie]?.value { sessions.close(id) }
            var response = Response(status: .seeOther, headers: [.location: "/login"])
            response.setCookie(Cookie(name: SignedIn.cookie, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict))
            return response
        }
    }
}

/// Lets a request through with a live session cookie or HTTP Basic credentials of a user; else
/// pages redirect to /login and the API answers 401.
struct SignedIn: RouterMiddleware {
    typealias Context = BasicRequestContext
    static let cookie = "herdwatch_session"
    let users: UserDirectory
    let sessions: Sessions

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // Who is signed in goes on to the handlers (who sent a command); never what a client says.
        func signedIn(_ user: String?) -> Request {
            var head = request.head
            head.headerFields[ManualCommands.userHeader] = user
            return Request(head: head, body: request.body)
        }
        if let id = request.cookies[Self.cookie]?.value, let user = sessions.user(of: id) {
            return try await next(signedIn(user), context)
        }
        if let authorization = request.headers[.authorization], authorization.hasPrefix("Basic "),
            let decoded = Data(base64Encoded: String(authorization.dropFirst(6))).map({ String(decoding: $0, as: UTF8.self) }),
            let colon = decoded.firstIndex(of: ":"),
            users.verify(name: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
        {
            return try await next(signedIn(String(decoded[..<colon])), context)
        }
        if request.uri.path.hasPrefix("/api/") {
            return Pages.json(.unauthorized, ["error": "sign in: a session cookie from /login, or HTTP Basic with a user of the users file"])
        }
        let next = request.uri.path + (request.uri.query.map { "?" + $0 } ?? "")
        return Response(
            status: .seeOther,
            headers: [.location: "/login?next=" + (next.addingPercentEncoding(withAllowedCharacters: Pages.unreserved) ?? "/hosts")])
    }
}

/// The pages. Every value shown is escaped; every value put into SQL is a quoted literal.
struct Pages: Sendable {
    let store: any FleetStore
    let rows: Int
    let signIn: Bool
    /// Whether the pages show the operators' command buttons.
    var commands = false

    // MARK: hosts

    func hosts(_ request: Request) async throws -> Response {
        let scope = request.uri.queryParameters.get("hosts") ?? "all"
        var options = QueryOptions()
        options.hosts = HostScope(parsing: scope)
        options.limit = 10_000
        let result = await run(
            """
            SELECT name, tags, level, last_seen, events, events_per_second, bytes_per_day, rss_bytes, cpu_percent, lost_total, \
            agent_version FROM hosts ORDER BY name
            """, options: options)
        var body = """
            <form method="get" action="/hosts" class="filters">
            <label>Hosts <input name="hosts" value="\(escape(scope))" placeholder="all, names, role=web,env=prod"></label>
            <button type="submit">Show</button></form>
            """
        switch result {
        case .failure(let error): body += errorBox(error)
        case .success(let result):
            body += "<table id=\"hosts\"><thead><tr>"
            body += (["Host", "Tags", "Level", "Last seen", "Events", "Events/s", "Cost/day", "Memory", "CPU", "Lost", "Agent"] + (commands ? ["Act"] : []))
                .map { "<th>\($0)</th>" }.joined()
            body += "</tr></thead><tbody>"
            for row in result.rows {
                let name = row[0].description
                let link = "/events?hosts=" + percent(name) + "&since=-1h"
                body += "<tr class=\"host\"><td><a href=\"\(escape(link))\">\(escape(name))</a></td>"
                body += "<td>\(escape(row[1].description))</td><td class=\"level\">\(escape(row[2].description))</td>"
                body += "<td>\(escape(row[3].description))</td><td class=\"number\">\(escape(row[4].description))</td>"
                body += "<td class=\"number\">\(Self.decimal(row[5]))</td><td class=\"number\">\(Self.bytes(row[6]))</td>"
                body += "<td class=\"number\">\(Self.bytes(row[7]))</td><td class=\"number\">\(Self.decimal(row[8]).isEmpty ? "" : Self.decimal(row[8]) + " %")</td>"
                body += "<td class=\"number\">\(escape(row[9].description))</td><td>\(escape(row[10].description))</td>"
                if commands {
                    body += "<td class=\"actions\">"
                        + ManualCommands.button("Full level 1 h", host: name, fields: ["action": "level", "level": "pet", "seconds": "3600"])
                        + ManualCommands.button("Isolate", host: name, fields: ["action": "isolate"])
                        + ManualCommands.button("Release", host: name, fields: ["action": "release"]) + "</td>"
                }
                body += "</tr>"
            }
            body += "</tbody></table><p class=\"note\">\(result.rows.count) hosts. Cost/day: bytes kept per day at the last heartbeat's rate (not from the first one after an agent starts).</p>"
        }
        return page("Hosts", body)
    }

    // MARK: alerts

    func alerts(_ request: Request) async throws -> Response {
        let parameters = request.uri.queryParameters
        let scope = parameters.get("hosts") ?? "all"
        let since = parameters.get("since") ?? "-7d"
        var options = QueryOptions()
        options.hosts = HostScope(parsing: scope)
        options.since = QueryOptions.time(parsing: since)
        options.limit = rows
        var conditions: [String] = []
        if let level = parameters.get("level"), !level.isEmpty { conditions.append("level = \(literal(level))") }
        let result = await run(
            """
            SELECT timestamp, host, level, rule_title, executable, command_line, user_name, entity_id, correlation, id, \
            (SELECT count(*) FROM responses WHERE responses.alert_id = alerts.id) AS responses FROM alerts \
            \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) ORDER BY time DESC
            """, options: options)
        var body = """
            <form method="get" action="/alerts" class="filters">
            <label>Hosts <input name="hosts" value="\(escape(scope))"></label>
            <label>Since <input name="since" value="\(escape(since))" size="10"></label>
            <label>Level <select name="level"><option value="">any</option>\(["critical", "high", "medium", "low", "informational"].map { "<option\(parameters.get("level") == $0 ? " selected" : "")>\($0)</option>" }.joined())</select></label>
            <button type="submit">Show</button></form>
            """
        // An alert's responses: the count links to them (not limited to the alerts' time bound).
        body += render(result, id: "alerts") { column, row, columns in
            guard column == "responses", row.last != .integer(0), let id = columns.firstIndex(of: "id") else { return nil }
            return "/responses?alert=" + percent(row[id].description)
        }
        return page("Alerts", body)
    }

    // MARK: responses

    static let responseStatuses = ["planned", "dry-run", "rate-limited", "sent", "succeeded", "failed", "refused"]

    /// Response decisions, newest first, by host scope, status and alert; a target that is a
    /// process the store has events of links to its page.
    func responses(_ request: Request) async throws -> Response {
        let parameters = request.uri.queryParameters
        func value(_ name: String) -> String { (parameters.get(name) ?? "").trimmingCharacters(in: .whitespaces) }
        let scope = value("hosts").isEmpty ? "all" : value("hosts")
        let alert = value("alert")
        let status = value("status")
        // An alert's responses whenever they were; otherwise the last week unless asked.
        let since = parameters.get("since") ?? (alert.isEmpty ? "-7d" : "")
        var options = QueryOptions()
        options.hosts = HostScope(parsing: scope)
        options.limit = rows
        let problems = options.setTimeBounds(since: since.isEmpty ? nil : since, until: nil)
        var conditions: [String] = []
        if !status.isEmpty { conditions.append("status = \(literal(status))") }
        if !alert.isEmpty { conditions.append("alert_id = \(literal(alert))") }
        var body = """
            <form method="get" action="/responses" class="filters">
            <label>Hosts <input name="hosts" value="\(escape(scope))" placeholder="all, names, role=web"></label>
            <label>Since <input name="since" value="\(escape(since))" size="10" placeholder="-7d"></label>
            <label>Status <select name="status"><option value="">any</option>\(Self.responseStatuses.map { "<option\(status == $0 ? " selected" : "")>\($0)</option>" }.joined())</select></label>
            <label>Alert <input name="alert" value="\(escape(alert))" size="16"></label>
            <button type="submit">Show</button></form>
            """
        guard problems.isEmpty else {
            body += problems.map { "<div class=\"error\">\(escape($0))</div>" }.joined()
            return page("Responses", body)
        }
        let result = await run(
            """
            SELECT timestamp, host, rule_title, rule_id, policy, action, target, status, dry_run, detail, alert_id, command_id FROM responses\
            \(conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")) ORDER BY time DESC, id
            """, options: options)
        guard case .success(let responses) = result else {
            return page("Responses", body + render(result, id: "responses"))
        }
        // Targets that are processes: the ones with events (a process page has something to show).
        let targets = Set(responses.rows.map { $0[6].description }.filter { !$0.isEmpty })
        var processes: Set<String> = []
        if !targets.isEmpty {
            var lookup = QueryOptions()
            lookup.hosts = options.hosts
            lookup.limit = targets.count
            let found = try? await store.query(
                "SELECT DISTINCT entity_id FROM events WHERE entity_id IN (\(targets.sorted().map(literal).joined(separator: ", ")))", options: lookup)
            processes = Set(found?.rows.map { $0[0].description } ?? [])
        }
        body += "<table id=\"responses\"><thead><tr>"
        body += ["Time", "Host", "Rule", "Policy", "Action", "Target", "Status", "Dry run", "Detail"].map { "<th>\($0)</th>" }.joined()
        body += "</tr></thead><tbody>"
        for row in responses.rows {
            let text = row.map(\.description)
            let rule = text[2].isEmpty ? text[3] : text[2]
            let ruleCell = text[2].isEmpty || text[3].isEmpty ? escape(rule) : "<span title=\"\(escape(text[3]))\">\(escape(rule))</span>"
            let target = processes.contains(text[6])
                ? "<a class=\"entity\" href=\"/process/\(escape(percent(text[6])))\">\(escape(text[6]))</a>" : escape(text[6])
            let detail = text[9].count > 300 ? String(text[9].prefix(300)) + "…" : text[9]
            body += "<tr class=\"response\"><td>\(escape(text[0]))</td><td>\(escape(text[1]))</td><td>\(ruleCell)</td>"
            body += "<td>\(escape(text[4]))</td><td>\(escape(text[5]))</td><td>\(target)</td>"
            body += "<td class=\"status \(escape(text[7]))\">\(escape(text[7]))</td><td>\(row[8] == .integer(0) ? "" : "dry run")</td>"
            body += "<td\(text[11].isEmpty ? "" : " title=\"command \(escape(text[11]))\"")>\(escape(detail))</td></tr>"
        }
        body += "</tbody></table><p class=\"note\">\(responses.rows.count) responses\(responses.truncated ? " (more matched; narrow the search)" : "").</p>"
        return page("Responses", body)
    }

    // MARK: events

    func events(_ request: Request) async throws -> Response {
        let parameters = request.uri.queryParameters
        func value(_ name: String) -> String { (parameters.get(name) ?? "").trimmingCharacters(in: .whitespaces) }
        let scope = value("hosts").isEmpty ? "all" : value("hosts")
        let sql = value("sql")
        var options = QueryOptions()
        options.hosts = HostScope(parsing: scope)
        options.limit = rows
        options.search = value("words")  // blank: no search
        let problems = options.setTimeBounds(
            since: value("since").isEmpty ? nil : value("since"), until: value("until").isEmpty ? nil : value("until"))
        var conditions: [String] = []
        if !value("action").isEmpty { conditions.append("action = \(literal(value("action")))") }
        if !value("executable").isEmpty { conditions.append("executable LIKE \(literal("%" + value("executable") + "%"))") }
        if !value("user").isEmpty { conditions.append("user_name = \(literal(value("user")))") }
        let outcomes = ["success", "failure", "unknown"]
        if outcomes.contains(value("outcome")) { conditions.append("outcome = \(literal(value("outcome")))") }
        if !value("text").isEmpty { conditions.append("command_line LIKE \(literal("%" + value("text") + "%"))") }
        let query = sql.isEmpty
            ? """
            SELECT timestamp, host, action, outcome, pid, executable, command_line, user_name, destination_ip, destination_port, \
            file_path, entity_id FROM events\(conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")) ORDER BY time DESC
            """ : sql
        var body = """
            <form method="get" action="/events" class="filters" id="search">
            <label>Hosts <input name="hosts" value="\(escape(scope))" placeholder="all, names, role=web"></label>
            <label>Since <input name="since" value="\(escape(value("since")))" size="10" placeholder="-1h"></label>
            <label>Until <input name="until" value="\(escape(value("until")))" size="10"></label>
            <label>Action <input name="action" value="\(escape(value("action")))" size="16" placeholder="process-started"></label>
            <label>Executable <input name="executable" value="\(escape(value("executable")))" size="16"></label>
            <label>User <input name="user" value="\(escape(value("user")))" size="8"></label>
            <label>Outcome <select name="outcome"><option value="">any</option>\(outcomes.map { "<option\(value("outcome") == $0 ? " selected" : "")>\($0)</option>" }.joined())</select></label>
            <label>Command line contains <input name="text" value="\(escape(value("text")))" size="16"></label>
            <label>Command line words <input name="words" value="\(escape(value("words")))" size="16" placeholder="full-text: curl sh"></label>
            <label class="sql">SQL (instead of the filters; views: \(QueryGuard.views.map(\.name).joined(separator: ", ")))
            <textarea name="sql" rows="3" cols="100">\(escape(sql))</textarea></label>
            <button type="submit">Search</button></form>
            """
        if problems.isEmpty {
            body += render(await run(query, options: options), id: "results")
        } else {
            body += problems.map { "<div class=\"error\">\(escape($0))</div>" }.joined()
        }
        return page("Events", body)
    }

    // MARK: hunts

    func hunts() async throws -> Response {
        var body = "<table id=\"hunts\"><thead><tr><th>Hunt</th><th>What it looks for</th><th>Query</th></tr></thead><tbody>"
        for hunt in try await store.hunts() {
            let link = "/events?sql=" + percent(hunt.sql) + "&hosts=" + percent(hunt.hosts ?? "all")
            body += "<tr><td><a href=\"\(escape(link))\">\(escape(hunt.name))</a></td><td>\(escape(hunt.description ?? ""))</td>"
            body += "<td><code>\(escape(hunt.sql))</code></td></tr>"
        }
        body += "</tbody></table>"
        return page("Hunts", body)
    }

    // MARK: process tree

    /// A process: its chain of ancestors (by parent entity id, up to 16), itself, its children, and
    /// what it did.
    func process(_ entity: String) async throws -> Response {
        var options = QueryOptions()
        options.limit = rows
        let columns = "timestamp, host, pid, executable, command_line, user_name, entity_id, parent_entity_id, parent_executable, action"
        func start(of entity: String) async -> [QueryValue]? {
            let result = try? await store.query(
                "SELECT \(columns) FROM events WHERE entity_id = \(literal(entity)) ORDER BY CASE WHEN action = 'process-started' THEN 0 ELSE 1 END, time LIMIT 1",
                options: options)
            return result?.rows.first
        }
        guard let this = await start(of: entity) else {
            return page("Process", "<div class=\"error\">No event has process.entity_id \(escape(entity)).</div>", status: .notFound)
        }
        var ancestors: [(entity: String, row: [QueryValue]?, executable: String)] = []
        var parent = this[7].description
        var parentExecutable = this[8].description
        while !parent.isEmpty, ancestors.count < 16, !ancestors.contains(where: { $0.entity == parent }) {
            let row = await start(of: parent)
            ancestors.append((parent, row, row?[3].description ?? parentExecutable))
            parent = row?[7].description ?? ""
            parentExecutable = row?[8].description ?? ""
        }
        let children = await run(
            "SELECT timestamp, pid, executable, command_line, entity_id FROM processes WHERE parent_entity_id = \(literal(entity)) AND action = 'process-started' ORDER BY time",
            options: options)
        func line(_ row: [QueryValue]?, entity: String, executable: String, current: Bool) -> String {
            let label = "<span class=\"exe\">\(escape(executable.isEmpty ? "?" : executable))</span>"
            guard let row else {
                return "<span class=\"proc unknown\">\(label) <span class=\"entity\">\(escape(entity))</span> (started before collection)</span>"
            }
            // The start's time when its exec was collected; otherwise the first event seen of it (an
            // exit, a connection), said so.
            let started = row[9].description == "process-started"
            let time = (started ? "" : "first seen ") + row[0].description
            let text = "\(label) pid \(escape(row[2].description)) <span class=\"cmd\">\(escape(row[4].description))</span> "
                + "<span class=\"user\">\(escape(row[5].description))</span> <span class=\"time\">\(escape(time))</span> "
                + "<span class=\"entity\">\(escape(entity))</span>"
            return current
                ? "<span class=\"proc current\">\(text)</span>"
                : "<a class=\"proc\" href=\"/process/\(escape(percent(entity)))\">\(text)</a>"
        }
        var tree = ""
        for ancestor in ancestors.reversed() {
            tree += "<ul><li class=\"ancestor\">" + line(ancestor.row, entity: ancestor.entity, executable: ancestor.executable, current: false)
        }
        tree += "<ul><li class=\"self\">" + line(this, entity: entity, executable: this[3].description, current: true)
        if case .success(let children) = children, !children.rows.isEmpty {
            tree += "<ul>"
            for child in children.rows {
                let row: [QueryValue] = [child[0], .null, child[1], child[2], child[3], .null, child[4], .null, .null, .text("process-started")]
                tree += "<li class=\"child\">" + line(row, entity: child[4].description, executable: child[2].description, current: false) + "</li>"
            }
            tree += "</ul>"
        }
        tree += "</li></ul>" + String(repeating: "</li></ul>", count: ancestors.count)
        let activity = await run(
            "SELECT timestamp, action, outcome, file_path, destination_ip, destination_port, user_name, id FROM events WHERE entity_id = \(literal(entity)) ORDER BY time",
            options: options)
        let kill = commands ? ManualCommands.button("Kill this process", host: this[1].description, fields: ["action": "kill", "entity_id": entity]) : ""
        let body = """
            <h2>\(escape(this[3].description)) on \(escape(this[1].description))</h2>
            \(kill)
            <div class="tree" id="tree">\(tree)</div>
            <h2>What it did</h2>
            \(render(activity, id: "activity"))
            """
        return page("Process", body)
    }

    // MARK: query API

    func api(sql: String, hosts: String?, since: String?, until: String?, limit: Int?, format: String?, search: String?) async -> Response {
        var options = QueryOptions()
        options.search = search
        options.hosts = HostScope(parsing: hosts ?? "all")
        options.limit = max(1, min(limit ?? 1000, 100_000))
        if let problem = options.setTimeBounds(since: since, until: until).first {
            return Self.json(.badRequest, ["error": problem])
        }
        do {
            let result = try await store.query(sql, options: options)
            if format == "csv" {
                return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: result.csv)))
            }
            let rows: [[Any]] = result.rows.map { $0.map(\.jsonObject) }
            return Self.json(.ok, ["columns": result.columns, "rows": rows, "truncated": result.truncated])
        } catch let error as QueryError {
            if case .timedOut = error { return Self.json(.requestTimeout, ["error": "\(error)"]) }
            return Self.json(.badRequest, ["error": "\(error)"])
        } catch {
            return Self.json(.internalServerError, ["error": "\(error)"])
        }
    }

    // MARK: helpers

    func run(_ sql: String, options: QueryOptions) async -> Result<QueryResult, QueryError> {
        do {
            return .success(try await store.query(sql, options: options))
        } catch let error as QueryError {
            return .failure(error)
        } catch {
            return .failure(.invalid("\(error)"))
        }
    }

    /// A result as a table; entity ids link to their process, and a cell to what `link` gives for
    /// it (its column, row and the columns), if anything.
    func render(
        _ result: Result<QueryResult, QueryError>, id: String, link: (String, [QueryValue], [String]) -> String? = { _, _, _ in nil }
    ) -> String {
        switch result {
        case .failure(let error): return errorBox(error)
        case .success(let result):
            let links = Set(result.columns.indices.filter { ["entity_id", "parent_entity_id"].contains(result.columns[$0]) })
            var html = "<table id=\"\(id)\"><thead><tr>" + result.columns.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>"
            for row in result.rows {
                html += "<tr>"
                for (index, value) in row.enumerated() {
                    let text = value.description
                    if links.contains(index), !text.isEmpty {
                        html += "<td><a class=\"entity\" href=\"/process/\(escape(percent(text)))\">\(escape(text))</a></td>"
                    } else if let target = link(result.columns[index], row, result.columns) {
                        html += "<td\(Self.isNumber(value) ? " class=\"number\"" : "")><a href=\"\(escape(target))\">\(escape(text))</a></td>"
                    } else {
                        let shown = text.count > 300 ? String(text.prefix(300)) + "…" : text
                        html += "<td\(Self.isNumber(value) ? " class=\"number\"" : "")>\(escape(shown))</td>"
                    }
                }
                html += "</tr>"
            }
            html += "</tbody></table><p class=\"note\">\(result.rows.count) rows\(result.truncated ? " (more matched; narrow the search)" : "").</p>"
            return html
        }
    }

    func errorBox(_ error: QueryError) -> String { "<div class=\"error\">\(escape("\(error)"))</div>" }

    func literal(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

    func percent(_ text: String) -> String { text.addingPercentEncoding(withAllowedCharacters: Self.unreserved) ?? "" }

    /// RFC 3986's unreserved characters: what a URL component may hold as is.
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func isNumber(_ value: QueryValue) -> Bool {
        switch value {
        case .integer, .real: true
        default: false
        }
    }

    static func decimal(_ value: QueryValue) -> String {
        switch value {
        case .real(let number): String(format: "%.1f", number)
        case .integer(let number): String(number)
        default: ""
        }
    }

    static func bytes(_ value: QueryValue) -> String {
        let number: Double
        switch value {
        case .real(let real): number = real
        case .integer(let integer): number = Double(integer)
        default: return ""
        }
        for (limit, unit) in [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")] where number >= limit {
            return String(format: "%.1f %@", number / limit, unit)
        }
        return String(format: "%.0f B", number)
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response { IngestRoutes.reply(status, object) }

    /// `a=1&b=x+y` (application/x-www-form-urlencoded) to a dictionary.
    static func form(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String { text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    /// A redirect target that stays on this server.
    static func localPath(_ text: String?) -> String {
        guard let text, text.hasPrefix("/"), !text.hasPrefix("//"), !text.contains("\\") else { return "/hosts" }
        return text
    }

    static func signInForm(next: String, failed: Bool) -> String {
        """
        \(failed ? "<div class=\"error\">Wrong user or password.</div>" : "")
        <form method="post" action="/login" class="signin">
        <input type="hidden" name="next" value="\(escape(localPath(next)))">
        <label>User <input name="user" autocomplete="username"></label>
        <label>Password <input name="password" type="password" autocomplete="current-password"></label>
        <button type="submit">Sign in</button></form>
        """
    }

    /// A page of the signed-in part: with a sign-out button when sign-in is on.
    func page(_ title: String, _ body: String, status: HTTPResponse.Status = .ok) -> Response {
        Self.page(title, signOut: signIn, body, status: status)
    }

    static func page(_ title: String, signOut: Bool, _ body: String, status: HTTPResponse.Status = .ok) -> Response {
        let navigation = [("Hosts", "/hosts"), ("Alerts", "/alerts"), ("Responses", "/responses"), ("Events", "/events"), ("Hunts", "/hunts")]
            .map { name, path in "<a href=\"\(path)\"\(name == title ? " class=\"here\"" : "")>\(name)</a>" }.joined()
        let signOutForm = signOut ? "<form method=\"post\" action=\"/logout\" class=\"signout\"><button>Sign out</button></form>" : ""
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) · Herdwatch</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <style>\(stylesheet)</style></head>
            <body><header><span class="brand">Herdwatch</span><nav>\(navigation)</nav>\(signOutForm)</header>
            <main><h1>\(escape(title))</h1>
            \(body)
            </main></body></html>
            """
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static let stylesheet = """
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fafafa}
        header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#1f2d3d;color:#fff}
        header a{color:#cfe3ff;text-decoration:none;margin-right:1em}header a.here{color:#fff;font-weight:600}
        .brand{font-weight:700;letter-spacing:.03em}.signout{margin-left:auto}
        main{padding:1em 1.2em}h1{font-size:1.3em;margin:.2em 0 .6em}h2{font-size:1.1em}
        table{border-collapse:collapse;width:100%;background:#fff}th,td{border-bottom:1px solid #e3e6ea;padding:.3em .5em;text-align:left;vertical-align:top}
        th{background:#eef1f4;font-weight:600}td.number{text-align:right;font-variant-numeric:tabular-nums}
        td{max-width:40em;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:12.5px}
        .filters{display:flex;flex-wrap:wrap;gap:.6em 1em;align-items:end;margin-bottom:1em}.filters label{display:flex;flex-direction:column;font-size:12px;color:#555}
        .filters label.sql{flex-basis:100%}textarea{font-family:ui-monospace,monospace;width:100%}
        .error{background:#fdecea;border:1px solid #f5c2c0;color:#8a1c14;padding:.6em;margin:.6em 0}
        .note{color:#666;font-size:12px}.tree ul{list-style:none;padding-left:1.4em;border-left:1px dotted #aab}
        .proc{display:inline-block;padding:.15em .4em;margin:.15em 0;border-radius:3px;background:#eef3fb;color:#1b1f24;text-decoration:none}
        .proc.current{background:#ffe9b3;font-weight:600}.proc.unknown{background:#eee;color:#666}
        .exe{font-weight:600}.cmd{font-family:ui-monospace,monospace}.entity,.time,.user{color:#667;font-size:11px}
        .signin{display:flex;flex-direction:column;gap:.6em;max-width:20em}
        td.status{font-weight:600}td.status.succeeded{color:#1d6b32}td.status.failed,td.status.refused{color:#8a1c14}
        td.status.dry-run,td.status.planned,td.status.rate-limited{color:#7a5a00}
        form.act{display:inline-block;margin:0 .3em .3em 0}form.act button{font-size:12px}
        """
}

/// HTML text with &, <, >, " and ' escaped.
func escape(_ text: String) -> String {
    var escaped = ""
    escaped.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": escaped += "&amp;"
        case "<": escaped += "&lt;"
        case ">": escaped += "&gt;"
        case "\"": escaped += "&quot;"
        case "'": escaped += "&#39;"
        default: escaped.append(character)
        }
    }
    return escaped
}
