import CNATS
import HerdwatchEvents
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A NATS error: what was being done and what the client library said.
public struct NATSError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var reason: String
    public var description: String { "NATS \(operation): \(reason)" }

    init(_ operation: String, _ status: natsStatus, _ code: jsErrCode = jsErrCode(rawValue: 0)) {
        self.operation = operation
        var text = String(cString: natsStatus_GetText(status))
        if let last = nats_GetLastError(nil), last.pointee != 0 {
            let detail = String(cString: last)
            if !detail.isEmpty, detail != text { text += " (\(detail))" }
        }
        if code.rawValue != 0 { text += " [JetStream error \(code.rawValue)]" }
        reason = text
    }

    init(_ operation: String, reason: String) {
        self.operation = operation
        self.reason = reason
    }
}

/// A connection to a NATS server with JetStream, over Debian's C client: publish batches and wait
/// for the stream's acknowledgment of every message (de-duplicated by message id), and read a
/// stream back with a pull consumer. Creating one fails when no server answers; once connected it
/// reconnects on its own, forever, and messages published while it is down wait in the client's
/// buffer and are acknowledged once it is back, or time out. One thread at a time per instance.
public final class JetStream {
    private var connection: OpaquePointer?
    private var context: OpaquePointer?
    private let acks: AckCounter
    public let url: String

    /// Counts acknowledgments; called on the client library's thread.
    final class AckCounter: Sendable {
        let state = Mutex((acknowledged: 0, failed: 0, firstError: String?.none))

        func reset() { state.withLock { $0 = (0, 0, nil) } }
    }

    /// Connects; throws when no server answers within `timeoutMilliseconds`.
    public init(url: String, name: String = "herdwatch", timeoutMilliseconds: Int64 = 5000) throws(NATSError) {
        self.url = url
        acks = AckCounter()
        var options: OpaquePointer?
        var status = natsOptions_Create(&options)
        guard status == NATS_OK else { throw NATSError("options", status) }
        defer { natsOptions_Destroy(options) }
        status = natsOptions_SetURL(options, url)
        guard status == NATS_OK else { throw NATSError("url \(url)", status) }
        _ = natsOptions_SetName(options, name)
        _ = natsOptions_SetTimeout(options, timeoutMilliseconds)
        _ = natsOptions_SetMaxReconnect(options, -1)
        _ = natsOptions_SetReconnectWait(options, 100)
        _ = natsOptions_SetReconnectBufSize(options, 64 << 20)
        _ = natsOptions_SetPingInterval(options, 2000)
        // The first connect fails fast when no server answers (the caller retries); once connected,
        // the client reconnects on its own.
        status = natsConnection_Connect(&connection, options)
        guard status == NATS_OK else { throw NATSError("connect \(url)", status) }

        var jsOptions = jsOptions()
        jsOptions_Init(&jsOptions)
        jsOptions.Wait = timeoutMilliseconds
        jsOptions.PublishAsync.MaxPending = 65_536
        jsOptions.PublishAsync.AckHandler = { _, message, ack, _, closure in
            let counter = Unmanaged<AckCounter>.fromOpaque(closure!).takeUnretainedValue()
            counter.state.withLock { state in
                if ack != nil {
                    state.acknowledged += 1
                } else {
                    state.failed += 1
                }
            }
            natsMsg_Destroy(message)
        }
        jsOptions.PublishAsync.AckHandlerClosure = Unmanaged.passUnretained(acks).toOpaque()
        status = natsConnection_JetStream(&context, connection, &jsOptions)
        guard status == NATS_OK else {
            natsConnection_Destroy(connection)
            throw NATSError("JetStream context", status)
        }
    }

    deinit {
        jsCtx_Destroy(context)
        natsConnection_Destroy(connection)
    }

    /// Makes sure a file-backed stream named `name` takes `subjects`; creates it when missing.
    public func ensureStream(name: String, subjects: [String], duplicateWindowMilliseconds: Int64 = 120_000) throws(NATSError) {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(rawValue: 0)
        var status = js_GetStreamInfo(&info, context, name, nil, &code)
        if status == NATS_OK {
            jsStreamInfo_Destroy(info)
            return
        }
        guard status == NATS_NOT_FOUND else { throw NATSError("stream \(name)", status, code) }
        var config = jsStreamConfig()
        jsStreamConfig_Init(&config)
        config.Storage = js_FileStorage
        config.Duplicates = duplicateWindowMilliseconds * 1_000_000  // nanoseconds
        let cSubjects = subjects.map { strdup($0) }
        defer { cSubjects.forEach { free($0) } }
        var pointers = cSubjects.map { UnsafePointer<CChar>($0) }
        status = name.withCString { cName in
            pointers.withUnsafeMutableBufferPointer { buffer in
                config.Name = cName
                config.Subjects = buffer.baseAddress
                config.SubjectsLen = Int32(buffer.count)
                return js_AddStream(&info, context, &config, nil, &code)
            }
        }
        guard status == NATS_OK else { throw NATSError("create stream \(name)", status, code) }
        jsStreamInfo_Destroy(info)
    }

    /// Publishes every message and returns once the stream has acknowledged all of them (a
    /// repeated id is acknowledged as a duplicate and stored once). Throws when any is refused or
    /// not acknowledged within `timeoutMilliseconds`; the caller sends the batch again.
    public func publish(
        _ messages: [(subject: String, id: String, payload: [UInt8])], contentEncoding: String? = nil, timeoutMilliseconds: Int64
    ) throws(NATSError) {
        guard !messages.isEmpty else { return }
        abandon()
        let target = try publishWithoutWaiting(messages, contentEncoding: contentEncoding)
        try waitForAcknowledgments(through: target, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Messages published since the last `abandon()`: what `waitForAcknowledgments(through:)` counts.
    public private(set) var published = 0

    /// Publishes every message without waiting for the stream; returns `published` after them,
    /// the count to wait for. On an error nothing is waited for any more (`abandon()`). With a
    /// `contentEncoding`, each message carries it as its `Content-Encoding` header.
    public func publishWithoutWaiting(
        _ messages: [(subject: String, id: String, payload: [UInt8])], contentEncoding: String? = nil
    ) throws(NATSError) -> Int {
        for message in messages {
            let status = message.subject.withCString { subject in
                message.id.withCString { id in
                    message.payload.withUnsafeBytes { bytes in
                        var options = jsPubOptions()
                        jsPubOptions_Init(&options)
                        options.MsgId = id
                        guard let contentEncoding else {
                            return js_PublishAsync(context, subject, bytes.baseAddress, Int32(bytes.count), &options)
                        }
                        var built: OpaquePointer?
                        var status = natsMsg_Create(&built, subject, nil, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
                        if status == NATS_OK { status = natsMsgHeader_Set(built, "Content-Encoding", contentEncoding) }
                        // The library takes the message (and sets `built` to nil) once it is queued.
                        if status == NATS_OK { status = js_PublishMsgAsync(context, &built, &options) }
                        if built != nil { natsMsg_Destroy(built) }
                        return status
                    }
                }
            }
            guard status == NATS_OK else {
                abandon()
                throw NATSError("publish", status)
            }
            published += 1
        }
        return published
    }

    /// Returns once the stream has acknowledged the first `target` messages published since the
    /// last `abandon()` (the stream acknowledges in order). Throws, and abandons everything
    /// pending, when one was refused or the acknowledgments do not come within `timeoutMilliseconds`.
    public func waitForAcknowledgments(through target: Int, timeoutMilliseconds: Int64) throws(NATSError) {
        if target >= published {
            // Everything pending: the library's own wait.
            var options = jsPubOptions()
            jsPubOptions_Init(&options)
            options.MaxWait = timeoutMilliseconds
            let status = js_PublishAsyncComplete(context, &options)
            if status != NATS_OK {
                abandon()
                throw NATSError("waiting for acknowledgments", status)
            }
        } else {
            let deadline = SystemClock.monotonicMilliseconds() + timeoutMilliseconds
            while acks.state.withLock({ $0.acknowledged + $0.failed }) < target {
                guard SystemClock.monotonicMilliseconds() < deadline else {
                    abandon()
                    throw NATSError("waiting for acknowledgments", reason: "timed out after \(timeoutMilliseconds) ms")
                }
                usleep(100)
            }
        }
        let (acknowledged, failed, _) = acks.state.withLock { $0 }
        guard failed == 0, acknowledged >= target else {
            abandon()
            throw NATSError("publish", reason: "\(failed) of \(target) messages refused, \(acknowledged) acknowledged")
        }
    }

    /// Stops waiting for what is pending (it will be sent again) and starts counting afresh.
    public func abandon() {
        // Only with something pending: before the first publish the library has no pending list
        // to hand back (asking crashes it).
        if published > acks.state.withLock({ $0.acknowledged + $0.failed }) { abandonPending() }
        acks.reset()
        published = 0
    }

    /// Drops messages still waiting for an acknowledgment (they will be sent again).
    private func abandonPending() {
        var pending = natsMsgList()
        if js_PublishAsyncGetPendingList(&pending, context) == NATS_OK {
            natsMsgList_Destroy(&pending)
        }
    }

    /// Reads what a durable pull consumer on `subject` has not yet taken, acknowledging each
    /// message: (message id header, payload, `Content-Encoding` header). Stops when a fetch brings
    /// nothing for `waitMilliseconds`.
    public func drain(subject: String, durable: String, batch: Int = 512, waitMilliseconds: Int64 = 500) throws(NATSError)
        -> [(id: String?, payload: [UInt8], encoding: String?)]
    {
        let consumer = try JetStreamConsumer(stream: self, subject: subject, durable: durable)
        var messages: [(id: String?, payload: [UInt8], encoding: String?)] = []
        while true {
            let fetched = try consumer.fetch(batch: batch, waitMilliseconds: waitMilliseconds)
            guard !fetched.isEmpty else { break }
            consumer.acknowledge()
            messages += fetched
        }
        return messages
    }

    /// The connection's JetStream context, for consumers.
    var jetStreamContext: OpaquePointer? { context }

    /// A subject token from any text: NATS separates tokens with dots and reserves `*`, `>` and
    /// white space.
    public static func subjectToken(_ text: String) -> String {
        let cleaned = text.map { character -> Character in
            character == "." || character == "*" || character == ">" || character.isWhitespace ? "_" : character
        }
        return cleaned.isEmpty ? "_" : String(cleaned)
    }
}

/// A durable pull consumer: fetch a batch, store it, then acknowledge it (or hand it back), so a
/// message is acknowledged only once it is safe. Several processes sharing the durable name share
/// the work. One thread at a time.
public final class JetStreamConsumer {
    private let stream: JetStream
    private var subscription: OpaquePointer?
    private var fetched = natsMsgList()

    public init(stream: JetStream, subject: String, durable: String) throws(NATSError) {
        self.stream = stream
        var code = jsErrCode(rawValue: 0)
        let status = js_PullSubscribe(&subscription, stream.jetStreamContext, subject, durable, nil, nil, &code)
        guard status == NATS_OK else { throw NATSError("subscribe \(subject) as \(durable)", status, code) }
    }

    deinit {
        handBack()
        natsSubscription_Destroy(subscription)
    }

    /// Up to `batch` messages (message id header, payload, `Content-Encoding` header), waiting up
    /// to `waitMilliseconds`; empty when none came. The previous batch must have been acknowledged
    /// or handed back.
    public func fetch(batch: Int, waitMilliseconds: Int64) throws(NATSError) -> [(id: String?, payload: [UInt8], encoding: String?)] {
        handBack()
        var code = jsErrCode(rawValue: 0)
        let status = natsSubscription_Fetch(&fetched, subscription, Int32(batch), waitMilliseconds, &code)
        if status == NATS_TIMEOUT { return [] }
        guard status == NATS_OK else { throw NATSError("fetch", status, code) }
        return (0..<Int(fetched.Count)).compactMap { index in
            guard let message = fetched.Msgs[index] else { return nil }
            let length = Int(natsMsg_GetDataLength(message))
            let payload = natsMsg_GetData(message).map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
            var header: UnsafePointer<CChar>?
            let id = natsMsgHeader_Get(message, "Nats-Msg-Id", &header) == NATS_OK ? header.map { String(cString: $0) } : nil
            header = nil
            let encoding = natsMsgHeader_Get(message, "Content-Encoding", &header) == NATS_OK ? header.map { String(cString: $0) } : nil
            return (id, payload, encoding)
        }
    }

    /// The last batch is safe: the server may forget it.
    public func acknowledge() {
        for index in 0..<Int(fetched.Count) {
            if let message = fetched.Msgs[index] { _ = natsMsg_Ack(message, nil) }
        }
        natsMsgList_Destroy(&fetched)
        fetched = natsMsgList()
    }

    /// The last batch was not handled: the server sends it again.
    public func handBack() {
        guard fetched.Count > 0 else { return }
        for index in 0..<Int(fetched.Count) {
            if let message = fetched.Msgs[index] { _ = natsMsg_Nak(message, nil) }
        }
        natsMsgList_Destroy(&fetched)
        fetched = natsMsgList()
    }
}
