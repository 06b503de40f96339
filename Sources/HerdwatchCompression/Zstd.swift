import CZstd

/// zstd (Debian's libzstd) behind one small Swift API, for the agent's HTTP batches
/// (`Content-Encoding: zstd`), the server that reads them without letting a small body expand past
/// its limit, and the store's blocks of event documents.
public enum Zstd {
    /// A compression context, reused from batch to batch by one thread.
    public final class Compressor {
        private let context: OpaquePointer
        public let level: Int32

        /// Level 1 compresses JSON events about tenfold at several hundred MB/s.
        public init(level: Int32 = 1) {
            // Only an allocation failure gives nil.
            context = ZSTD_createCCtx()!
            self.level = level
        }

        deinit { ZSTD_freeCCtx(context) }

        /// One zstd frame holding `bytes` (its size recorded in the frame header).
        public func compress(_ bytes: [UInt8]) -> [UInt8] {
            let bound = ZSTD_compressBound(bytes.count)
            return [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
                let written = bytes.withUnsafeBytes { input in
                    ZSTD_compressCCtx(context, buffer.baseAddress, bound, input.baseAddress, input.count, level)
                }
                // With a buffer of compressBound, zstd fails only without memory.
                precondition(ZSTD_isError(written) == 0, "zstd: \(String(cString: ZSTD_getErrorName(written)))")
                count = written
            }
        }
    }

    public enum DecompressionError: Error, Equatable, CustomStringConvertible {
        /// Not zstd, or damaged: zstd's reason.
        case corrupt(String)
        /// It would grow past `limit` bytes.
        case tooLarge(limit: Int)
        /// The body ends inside a frame.
        case truncated

        public var description: String {
            switch self {
            case .corrupt(let reason): "not a valid zstd body: \(reason)"
            case .tooLarge(let limit): "the body decompresses to more than \(limit) bytes"
            case .truncated: "the zstd body ends in the middle of a frame"
            }
        }
    }

    /// One frame that holds exactly `size` bytes (as the store keeps its blocks, with their size
    /// beside them), or nil when `compressed` is damaged or holds another size.
    public static func decompress(_ compressed: UnsafeRawBufferPointer, size: Int) -> [UInt8]? {
        guard size >= 0, let source = compressed.baseAddress else { return nil }
        var failed = false
        let bytes = [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, count in
            let written = ZSTD_decompress(buffer.baseAddress, size, source, compressed.count)
            failed = ZSTD_isError(written) != 0 || written != size
            count = failed ? 0 : written
        }
        return failed ? nil : bytes
    }

    /// Every frame of `compressed`, decompressed in one stream, stopping as soon as the output
    /// passes `limit` bytes (whatever size the frame header claims).
    public static func decompress(_ compressed: UnsafeRawBufferPointer, limit: Int) throws(DecompressionError) -> [UInt8] {
        // One frame whose header gives its size (what the agent's sink sends): decompressed in one
        // call straight into an array of that size, with no chunk to copy from and no regrowth.
        // zstd never writes past the size given, whatever the frame holds.
        if let source = compressed.baseAddress, ZSTD_findFrameCompressedSize(source, compressed.count) == compressed.count {
            let declared = ZSTD_getFrameContentSize(source, compressed.count)
            // UInt64.max: size unknown; UInt64.max - 1: not a frame (the streaming path says why).
            if declared < UInt64.max - 1 {
                guard declared <= UInt64(limit) else { throw .tooLarge(limit: limit) }
                if let bytes = decompress(compressed, size: Int(declared)) { return bytes }
            }
        }
        guard let stream = ZSTD_createDStream() else { throw .corrupt("out of memory") }
        defer { ZSTD_freeDStream(stream) }
        var output: [UInt8] = []
        let chunk = ZSTD_DStreamOutSize()
        var chunkBuffer = [UInt8](repeating: 0, count: chunk)
        var input = ZSTD_inBuffer(src: compressed.baseAddress, size: compressed.count, pos: 0)
        var frameOpen = false
        while input.pos < input.size || frameOpen {
            let (left, produced) = chunkBuffer.withUnsafeMutableBytes { buffer in
                var out = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
                let left = ZSTD_decompressStream(stream, &out, &input)
                return (left, out.pos)
            }
            if ZSTD_isError(left) != 0 { throw .corrupt(String(cString: ZSTD_getErrorName(left))) }
            guard output.count + produced <= limit else { throw .tooLarge(limit: limit) }
            output.append(contentsOf: chunkBuffer[..<produced])
            frameOpen = left != 0
            // Input used up inside a frame, and the output buffer not full: nothing more can come.
            if frameOpen && input.pos == input.size && produced < chunk { throw .truncated }
        }
        return output
    }
}
