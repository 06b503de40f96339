import Foundation
import HerdwatchCompression
import HerdwatchShipping
import HerdwatchStore
import Hummingbird
import Logging

/// The HTTP endpoint the agents' HTTP sink talks to.
///
///     POST /api/v1/events
///     Authorization: Bearer HOST-TOKEN
///     Content-Type: application/x-ndjson
///     Content-Encoding: zstd            (optional: the agent's default)
///     one ECS event per line
///
/// A batch is stored whole or not at all, and the reply comes after it is on disk: 200 with
/// `{"stored": N, "duplicates": D}` (events already stored are counted, not stored again), or, with
/// an ingest journal, `{"accepted": N}` once the batch is checked and in the journal (stored behind;
/// 503 while the journal's backlog is full); 400 with
/// the bad lines (`{"error": ..., "rejected": [{"line": N, "reason": ...}]}`) when a line is not an
/// event or names another host than the token's or the body does not decompress; 401 for a
/// missing or unknown token; 413 past the size limit (`maximumBodyBytes`, as sent and
/// decompressed); 415 for an encoding other than zstd. One bad batch never affects another.
public struct IngestConfiguration: Sendable {
    /// Token → the host it authenticates.
    public var tokens: [String: String]
    /// Host → its tags (`role=web`), from the tokens file.
    public var hostTags: [String: HostTags] = [:]
    /// A batch's limit, as sent and (when compressed) decompressed.
    public var maximumBodyBytes = 16 << 20
    /// How long a host's batch waits for an earlier one of its stream before it goes on without it.
    public var batchOrderPatience = Duration.seconds(2)

    public init(tokens: [String: String], hostTags: [String: HostTags] = [:]) {
        self.tokens = tokens
        self.hostTags = hostTags
    }

    /// The tokens file of `herdwatch server --tokens`: `HOST TOKEN [key=value ...]` per line, `#`
    /// comments. The tags put the host in groups that queries select (`--hosts role=web`).
    public init(parsing text: String, file: String) throws {
        self.init(tokens: [:])
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first, !first.hasPrefix("#") else { continue }
            guard words.count >= 2, words[1].count >= 16 else {
                throw IngestSetupError(
                    description: "\(file):\(index + 1): expected 'HOST TOKEN [key=value ...]' with a token of 16 characters or more")
            }
            if let other = tokens[String(words[1])] {
                throw IngestSetupError(description: "\(file):\(index + 1): the token of '\(first)' is already the token of '\(other)'")
            }
            tokens[String(words[1])] = String(first)
            switch HostTags.tags(parsing: Substring(words.dropFirst(2).joined(separator: " "))) {
            case .success(let tags): hostTags[String(first)] = tags
            case .failure(let error): throw IngestSetupError(description: "\(file):\(index + 1): \(error)")
            }
        }
    }
}

extension IngestConfiguration {
    /// The host a request's `Authorization: Bearer TOKEN` authenticates, if any.
    func host(authenticating request: Request) -> String? {
        guard let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") else { return nil }
        return tokens[String(authorization.dropFirst("Bearer ".count))]
    }
}

public struct IngestSetupError: Error, CustomStringConvertible {
    public var description: String
}

public enum IngestRoutes {
    public static func add(
        to router: Router<BasicRequestContext>, store: any FleetStore, configuration: IngestConfiguration, detection: DetectionStage? = nil,
        journal: IngestJournal? = nil, logger: Logger
    ) {
        router.get("/api/v1/health") { _, _ in "ok\n" }
        // One host's batches, sent over several connections, are journaled or stored in the order sent.
        let order = BatchOrder(patience: configuration.batchOrderPatience)
        router.post("/api/v1/events") { request, context -> Response in
            guard let host = configuration.host(authenticating: request) else {
                return reply(.unauthorized, ["error": "missing or unknown token (Authorization: Bearer HOST-TOKEN)"])
            }
            let place = request.headers[BatchOrder.header].flatMap(BatchOrder.parse(header:))
            // A batch refused before its turn is through all the same: the ones after it go on.
            var inTurn = false
            defer {
                if let place, !inTurn { order.finished(host: host, stream: place.stream, number: place.number) }
            }
            /// Runs `body` in the batch's turn (at once for a batch without a place); nil when an
            /// earlier batch of its stream failed (the agent sends it and this one again).
            func turn<T>(_ body: () async throws -> T) async rethrows -> T? {
                guard let place else { return try await body() }
                inTurn = true
                return try await order.inTurn(host: host, stream: place.stream, number: place.number, body)
            }
            var request = request
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: configuration.maximumBodyBytes)
            } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
                return reply(.contentTooLarge, ["error": "batch larger than \(configuration.maximumBodyBytes) bytes; send smaller batches"])
            }
            let bytes: [UInt8]
            let encoding = request.headers[.contentEncoding]?.lowercased()
            switch encoding {
            case nil, "identity":
                bytes = Array(body.readableBytesView)
            case "zstd":
                do {
                    let limit = configuration.maximumBodyBytes
                    bytes = try body.withUnsafeReadableBytes { bytes throws(Zstd.DecompressionError) in try Zstd.decompress(bytes, limit: limit) }
                } catch Zstd.DecompressionError.tooLarge {
                    return reply(.contentTooLarge, ["error": "batch larger than \(configuration.maximumBodyBytes) bytes decompressed; send smaller batches"])
                } catch {
                    logger.warning("batch refused", metadata: ["host": "\(host)", "error": "\(error)"])
                    return reply(.badRequest, ["error": "batch refused: \(error); nothing of it was stored"])
                }
            case let encoding?:
                return reply(.unsupportedMediaType, ["error": "Content-Encoding '\(encoding)' is not supported; send zstd or no encoding"])
            }
            func refuse(_ rejected: [IngestResult.Rejection]) -> Response {
                logger.warning("batch refused", metadata: ["host": "\(host)", "first": "\(rejected[0])"])
                return reply(
                    .badRequest,
                    [
                        "error": "batch refused: \(rejected.count) bad lines; nothing of it was stored",
                        "rejected": rejected.prefix(100).map { ["line": $0.line, "reason": $0.reason] },
                    ])
            }
            if let journal {
                // Checked now (on every core, and without making strings: the loader parses it
                // behind), acknowledged once in the journal, stored behind (IngestJournal).
                let (count, rejected) = await ParsedBatch.check(body: bytes, host: host, parts: cores)
                guard rejected.isEmpty else { return refuse(rejected) }
                let taken = try await turn {
                    let accepted = try await journal.accept(
                        host: host, body: encoding == "zstd" ? Array(body.readableBytesView) : bytes, zstd: encoding == "zstd", events: count)
                    // Refused for a full journal: the ones sent after it wait for it, not go first.
                    if !accepted, let place { order.breakStream(host: host, stream: place.stream) }
                    return accepted
                }
                guard let accepted = taken else { return behindAFailure }
                guard accepted else {
                    return reply(
                        .serviceUnavailable, ["error": "the server's ingest journal is full while the store catches up; send again later"], retryAfter: 5)
                }
                return reply(.ok, ["accepted": count])
            }
            // Cut and checked on every core: one connection's batches come one after another, so
            // this is what bounds one agent's rate.
            let (lines, batch) = await ParsedBatch.parse(body: bytes, host: host, parts: cores)
            guard batch.rejected.isEmpty else { return refuse(batch.rejected) }
            let stored = try await turn {
                let result = try await store.ingest(batch)
                // Stored first (the agent's ack waits for the disk), then detected over what is new.
                await detection?.process(lines: lines, stored: result.insertedLines)
                return result
            }
            guard let result = stored else { return behindAFailure }
            return reply(.ok, ["stored": result.inserted, "duplicates": result.duplicates])
        }
    }

    static let cores = ProcessInfo.processInfo.activeProcessorCount

    /// 503 for a batch behind a failed one of its stream: the agent sends both again.
    static var behindAFailure: Response {
        reply(.serviceUnavailable, ["error": "an earlier batch of this connection's stream failed; send both again"], retryAfter: 1)
    }

    static func reply(_ status: HTTPResponse.Status, _ object: [String: Any], retryAfter seconds: Int? = nil) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        var response = Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data + Data("\n".utf8))))
        if let seconds { response.headers[.retryAfter] = "\(seconds)" }
        return response
    }
}

