import Testing

import HerdwatchCompression

@Suite struct ZstdTests {
    let text = Array((0..<2000).map { #"{"event":{"id":"e-\#($0)"},"host":{"name":"web1"}}"# }.joined(separator: "\n").utf8)

    @Test func aBatchComesBackAsItWasSent() throws {
        let compressed = Zstd.Compressor().compress(text)
        #expect(compressed.count * 5 < text.count)
        #expect(try compressed.withUnsafeBytes { try Zstd.decompress($0, limit: text.count) } == text)
        // Frames one after another are one body (what a streaming compressor may send).
        let two = compressed + Zstd.Compressor(level: 3).compress(Array("\nlast".utf8))
        #expect(try two.withUnsafeBytes { try Zstd.decompress($0, limit: 1 << 20) } == text + Array("\nlast".utf8))
        #expect(try [UInt8]().withUnsafeBytes { try Zstd.decompress($0, limit: 10) } == [])
    }

    @Test func badBodiesAreNamed() {
        let compressed = Zstd.Compressor().compress(text)
        #expect(throws: Zstd.DecompressionError.tooLarge(limit: text.count - 1)) {
            try compressed.withUnsafeBytes { try Zstd.decompress($0, limit: text.count - 1) }
        }
        #expect(throws: Zstd.DecompressionError.truncated) {
            try Array(compressed.prefix(compressed.count / 2)).withUnsafeBytes { try Zstd.decompress($0, limit: 1 << 20) }
        }
        #expect {
            try Array(text.prefix(100)).withUnsafeBytes { try Zstd.decompress($0, limit: 1 << 20) }
        } throws: { error in
            guard case .corrupt(let reason) = error as? Zstd.DecompressionError else { return false }
            return !reason.isEmpty
        }
    }

    /// The store's blocks: one frame of a known size, nil for anything else.
    @Test func aBlockOfKnownSizeComesBackOrNil() {
        let compressed = Zstd.Compressor().compress(text)
        #expect(compressed.withUnsafeBytes { Zstd.decompress($0, size: text.count) } == text)
        #expect(compressed.withUnsafeBytes { Zstd.decompress($0, size: text.count - 1) } == nil)
        #expect(compressed.withUnsafeBytes { Zstd.decompress($0, size: text.count + 1) } == nil)
        #expect(Array(compressed.prefix(compressed.count / 2)).withUnsafeBytes { Zstd.decompress($0, size: text.count) } == nil)
        #expect(Array(text.prefix(100)).withUnsafeBytes { Zstd.decompress($0, size: 100) } == nil)
        #expect(compressed.withUnsafeBytes { Zstd.decompress($0, size: -1) } == nil)
    }
}
