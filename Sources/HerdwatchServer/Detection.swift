import Foundation
import HerdwatchDetection
import HerdwatchStore
import Logging
import ServiceLifecycle
import Synchronization

/// Runs the Sigma rules over what the server stores: every newly stored event (never a duplicate,
/// so a redelivered batch raises nothing twice), in arrival order, with correlation state kept
/// across batches. Alerts are stored (the `alerts` view) and logged.
public final class DetectionStage: Sendable {
    private let detector: Mutex<Detector>
    private let store: any FleetStore
    private let logger: Logger
    /// Automated responses to the alerts; nil: none.
    let responder: Responder?

    public init(ruleSet: RuleSet, store: any FleetStore, responder: Responder? = nil, logger: Logger) {
        detector = Mutex(Detector(ruleSet: ruleSet))
        self.store = store
        self.responder = responder
        self.logger = logger
    }

    public var ruleCount: Int { detector.withLock { $0.ruleSet.rules.count + $0.ruleSet.correlations.count } }

    /// Detects over the lines of a batch that were stored now, and stores the alerts.
    @discardableResult
    public func process(lines: [Substring], stored: [Int]) async -> [Alert] {
        guard !stored.isEmpty else { return [] }
        let subjects = stored.compactMap { JSONSubject(json: lines[$0]) }
        var alerts = detector.withLock { detector in subjects.flatMap { detector.process($0) } }
        // The agents' reports on commands complete their response records (a refusal is an alert).
        if let responder { alerts += await responder.observe(subjects) }
        guard !alerts.isEmpty else { return [] }
        let storedAlerts = alerts.map(Self.stored)
        do {
            try await store.store(alerts: storedAlerts)
        } catch {
            logger.error("alerts not stored", metadata: ["count": "\(alerts.count)", "error": "\(error)"])
        }
        responder?.respond(to: alerts, stored: storedAlerts)
        for alert in alerts {
            logger.notice(
                "alert",
                metadata: [
                    "rule": "\(alert.ruleTitle)", "level": "\(alert.level.rawValue)", "host": "\(alert.host ?? "")",
                    "process": "\(alert.executable ?? "")", "entity_id": "\(alert.entityID ?? "")",
                ])
        }
        return alerts
    }

    /// Stores an alert raised outside the rules (the silence watchdog).
    public func raise(_ alert: Alert) async {
        do {
            let stored = Self.stored(alert)
            try await store.store(alerts: [stored])
            responder?.respond(to: [alert], stored: [stored])
            logger.notice("alert", metadata: ["rule": "\(alert.ruleTitle)", "host": "\(alert.host ?? "")"])
        } catch {
            logger.error("alert not stored", metadata: ["rule": "\(alert.ruleTitle)", "error": "\(error)"])
        }
    }

    static func stored(_ alert: Alert) -> StoredAlert {
        let events = alert.eventIDs.map { $0 ?? "" }
        return StoredAlert(
            id: "\(alert.ruleID):\(alert.host ?? ""):\(events.joined(separator: ","))", host: alert.host ?? "",
            time: alert.timeMilliseconds, ruleID: alert.ruleID, ruleTitle: alert.ruleTitle, level: alert.level.rawValue,
            severity: alert.level.severity, correlation: alert.correlation, entityID: alert.entityID, pid: alert.pid,
            executable: alert.executable, commandLine: alert.commandLine, userName: alert.userName, eventIDs: events,
            tags: alert.tags, json: alert.json())
    }
}

/// An agent that goes silent: Sigma cannot express an absence, so the server watches for it. A host
/// whose newest event (heartbeats included) is older than `silence` raises one alert per silence.
public final class SilenceWatch: Service, Sendable {
    private let store: any FleetStore
    private let detection: DetectionStage
    private let silenceMilliseconds: Int64
    private let alerted = Mutex<[String: Int64]>([:])

    private let interval: Duration

    public init(store: any FleetStore, detection: DetectionStage, silenceSeconds: Int) {
        self.store = store
        self.detection = detection
        silenceMilliseconds = Int64(silenceSeconds) * 1000
        interval = .milliseconds(min(30_000, silenceSeconds * 250))
    }

    /// Checks once; returns the hosts newly found silent.
    @discardableResult
    public func check(now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) async throws -> [String] {
        var found: [String] = []
        for (host, lastSeen) in try await store.hosts(silentSince: now - silenceMilliseconds) {
            let isNew = alerted.withLock { alerted in
                guard alerted[host] != lastSeen else { return false }
                alerted[host] = lastSeen
                return true
            }
            guard isNew else { continue }
            found.append(host)
            await detection.raise(
                Alert(
                    ruleID: "herdwatch-agent-silent", ruleTitle: "Agent Went Silent", level: .high,
                    tags: ["attack.defense-evasion", "attack.t1562.001"], ruleFile: "server watchdog", correlation: nil,
                    host: host, timeMilliseconds: now, eventIDs: [], entityID: nil, pid: nil, executable: nil,
                    commandLine: nil, userName: nil, recordType: nil))
        }
        return found
    }

    /// Checks every quarter of the silence (at most every 30 s) until cancelled or shut down.
    public func run() async throws {
        await repeatUntilShutdown(every: interval) {
            // The store down or busy: the next round tries again.
            _ = try? await self.check()
        }
    }
}
