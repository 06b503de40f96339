import Foundation
import Testing

@testable import HerdwatchCommands

@Suite struct CommandVerifierTests {
    let signer = CommandSigner()
    let now: Int64 = 1_780_000_000_000

    func verifier(accepting actions: Set<String> = ["level", "kill"]) throws -> CommandVerifier {
        try CommandVerifier(publicKeyBase64: signer.publicKeyBase64, hostName: "web1", acceptedActions: actions)
    }

    func command(host: String = "web1", action: String = "kill", issuedAt: Int64? = nil, lifetime: Int64 = 60_000) -> Command {
        Command(
            host: host, action: action, arguments: ["entity_id": "abcd1234-42-777"], issuedAt: issuedAt ?? now,
            lifetimeMilliseconds: lifetime, requestedBy: "policy test")
    }

    func refusal(_ result: Result<Command, CommandVerifier.Refused>) -> CommandRefusal? {
        if case .failure(let refused) = result { return refused.reason }
        return nil
    }

    @Test func aSignedCommandForThisHostIsAccepted() throws {
        var ledger = NonceLedger(path: nil, now: now)
        let sent = command()
        let result = try verifier().verify(signer.sign(sent), now: now + 10, ledger: &ledger)
        #expect(try result.get() == sent)
    }

    @Test func aCommandSignedWithAnotherKeyIsRefused() throws {
        var ledger = NonceLedger(path: nil, now: now)
        let forged = CommandSigner().sign(command())
        #expect(refusal(try verifier().verify(forged, now: now, ledger: &ledger)) == .badSignature)
    }

    @Test func aTamperedPayloadIsRefused() throws {
        var ledger = NonceLedger(path: nil, now: now)
        var signed = signer.sign(command())
        var payload = Data(base64Encoded: signed.payload)!
        let text = String(decoding: payload, as: UTF8.self).replacingOccurrences(of: "web1", with: "web2")
        payload = Data(text.utf8)
        signed.payload = payload.base64EncodedString()
        #expect(refusal(try verifier().verify(signed, now: now, ledger: &ledger)) == .badSignature)
        signed.payload = "not base64!"
        #expect(refusal(try verifier().verify(signed, now: now, ledger: &ledger))?.code == "malformed")
    }

    @Test func aCommandForAnotherHostIsRefused() throws {
        var ledger = NonceLedger(path: nil, now: now)
        #expect(refusal(try verifier().verify(signer.sign(command(host: "db1")), now: now, ledger: &ledger)) == .wrongHost("db1"))
    }

    @Test func expiredEarlyAndOverlongCommandsAreRefused() throws {
        var ledger = NonceLedger(path: nil, now: now)
        let verifier = try verifier()
        let expired = verifier.verify(signer.sign(command(issuedAt: now - 120_000)), now: now, ledger: &ledger)
        #expect(refusal(expired) == .expired(agoMilliseconds: 60_000))
        let early = verifier.verify(signer.sign(command(issuedAt: now + 300_000)), now: now, ledger: &ledger)
        #expect(refusal(early) == .notYetValid(inMilliseconds: 300_000))
        let long = verifier.verify(signer.sign(command(lifetime: 86_400_000)), now: now, ledger: &ledger)
        #expect(refusal(long) == .lifetimeTooLong(milliseconds: 86_400_000))
    }

    @Test func aReplayIsRefusedEvenAfterARestart() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hw-ledger-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let signed = signer.sign(command())
        var ledger = NonceLedger(path: file, now: now)
        #expect((try? verifier().verify(signed, now: now, ledger: &ledger).get()) != nil)
        #expect(refusal(try verifier().verify(signed, now: now + 1, ledger: &ledger)) == .replayed)
        var restarted = NonceLedger(path: file, now: now + 2)
        #expect(restarted.count == 1)
        #expect(refusal(try verifier().verify(signed, now: now + 2, ledger: &restarted)) == .replayed)
        // Long after the command expired, the id is forgotten (and the command refused as expired).
        let later = NonceLedger(path: file, now: now + 3_600_000)
        #expect(later.count == 0)
    }

    @Test func actionsTheAgentDoesNotAcceptAreRefused() throws {
        var ledger = NonceLedger(path: nil, now: now)
        let result = try verifier(accepting: ["level"]).verify(signer.sign(command(action: "kill")), now: now, ledger: &ledger)
        #expect(refusal(result) == .notAccepted("kill"))
        if case .failure(let refused) = result { #expect(refused.command?.action == "kill") }
    }

    @Test func idsThatCouldBreakTheLedgerAreRefused() throws {
        var ledger = NonceLedger(path: nil, now: now)
        var bad = command()
        bad.id = "a b\nc"
        #expect(refusal(try verifier().verify(signer.sign(bad), now: now, ledger: &ledger))?.code == "malformed")
    }

    @Test func keysRoundTripAndBadKeysAreClearErrors() throws {
        let copy = try CommandSigner(base64: signer.base64Representation)
        #expect(copy.publicKeyBase64 == signer.publicKeyBase64)
        #expect(throws: CommandKeyError.self) { try CommandSigner(base64: "short") }
        #expect(throws: CommandKeyError.self) { try CommandVerifier(publicKeyBase64: "%%%", hostName: "h", acceptedActions: []) }
    }
}
