/// A compiled Sigma string value: equality, prefix, suffix, substring, or a wildcard glob (`*`, `?`)
/// matched over bytes without a regex. Case-insensitive unless `cased` (ASCII letters fold; the
/// pattern is lower-cased once, the event's bytes as they are compared).
public struct StringPattern: Sendable, Hashable {
    enum Shape: Sendable, Hashable {
        case equals
        case prefix
        case suffix
        case contains
        case anything
        /// Literal segments between stars; `?` inside a segment stands for one character.
        case glob(segments: [[Token]], anchoredStart: Bool, anchoredEnd: Bool)
    }

    enum Token: Sendable, Hashable {
        case byte(UInt8)
        case anyCharacter
    }

    let shape: Shape
    /// The literal for equals / prefix / suffix / contains (folded unless cased).
    let literal: [UInt8]
    let cased: Bool

    /// Compiles a Sigma value: `*` any run, `?` one character, `\*` `\?` `\\` literal (a lone
    /// backslash stays a backslash).
    public init(sigma value: String, cased: Bool = false) {
        var tokens: [[Token]] = [[]]
        var startsWithStar = false
        var endsWithStar = false
        let bytes = Array((cased ? value : Self.lowercased(value)).utf8)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\"), index + 1 < bytes.count,
                [UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "\\")].contains(bytes[index + 1])
            {
                tokens[tokens.count - 1].append(.byte(bytes[index + 1]))
                index += 2
                endsWithStar = false
                continue
            }
            if byte == UInt8(ascii: "*") {
                if index == 0 { startsWithStar = true }
                if !tokens[tokens.count - 1].isEmpty { tokens.append([]) }
                endsWithStar = true
            } else {
                tokens[tokens.count - 1].append(byte == UInt8(ascii: "?") ? .anyCharacter : .byte(byte))
                endsWithStar = false
            }
            index += 1
        }
        if tokens.last?.isEmpty == true && tokens.count > 1 { tokens.removeLast() }
        self.cased = cased
        let literals = tokens.allSatisfy { $0.allSatisfy { if case .byte = $0 { true } else { false } } }
        func bytesOf(_ segment: [Token]) -> [UInt8] {
            segment.map { if case .byte(let b) = $0 { b } else { 0 } }
        }
        if tokens == [[]] {
            shape = startsWithStar ? .anything : .equals
            literal = []
        } else if literals && tokens.count == 1 {
            literal = bytesOf(tokens[0])
            switch (startsWithStar, endsWithStar) {
            case (false, false): shape = .equals
            case (true, false): shape = .suffix
            case (false, true): shape = .prefix
            case (true, true): shape = .contains
            }
        } else {
            literal = []
            shape = .glob(segments: tokens, anchoredStart: !startsWithStar, anchoredEnd: !endsWithStar)
        }
    }

    /// The exact (folded) text this pattern requires, when it is a plain equality.
    var equalityLiteral: String? {
        if case .equals = shape { return String(decoding: literal, as: UTF8.self) }
        return nil
    }

    static func lowercased(_ text: String) -> String {
        // Most values are lower-case already: no copy.
        if !text.utf8.contains(where: { $0 &- 65 < 26 || $0 >= 0x80 }) { return text }
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            return String(decoding: text.utf8.map { fold($0) }, as: UTF8.self)
        }
        return text.lowercased()
    }

    @inline(__always)
    static func fold(_ byte: UInt8) -> UInt8 { byte &- 65 < 26 ? byte | 0x20 : byte }

    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches(bytes: $0) }
    }

    func matches(bytes text: UnsafeBufferPointer<UInt8>) -> Bool {
        if case .glob(let segments, let anchoredStart, let anchoredEnd) = shape {
            return glob(segments, anchoredStart, anchoredEnd, text)
        }
        return literal.withUnsafeBufferPointer { literal in
            switch shape {
            case .anything: true
            case .equals: text.count == literal.count && Program.equal(text, 0, literal, cased)
            case .prefix: text.count >= literal.count && Program.equal(text, 0, literal, cased)
            case .suffix: text.count >= literal.count && Program.equal(text, text.count - literal.count, literal, cased)
            case .contains: Program.contains(text, literal, cased)
            case .glob: false
            }
        }
    }

    /// Matches `segment` at `offset`; returns the offset after it.
    private func match(_ segment: [Token], in text: UnsafeBufferPointer<UInt8>, at offset: Int) -> Int? {
        var position = offset
        for token in segment {
            guard position < text.count else { return nil }
            switch token {
            case .byte(let byte):
                if (cased ? text[position] : Self.fold(text[position])) != byte { return nil }
                position += 1
            case .anyCharacter:
                // One character: a UTF-8 lead byte and its continuation bytes.
                position += 1
                while position < text.count && text[position] & 0xC0 == 0x80 { position += 1 }
            }
        }
        return position
    }

    private func glob(_ segments: [[Token]], _ anchoredStart: Bool, _ anchoredEnd: Bool, _ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var position = 0
        for (index, segment) in segments.enumerated() {
            let isFirst = index == 0
            let isLast = index == segments.count - 1
            if isLast && anchoredEnd {
                // The last segment must end the text: try it at every start from the right place.
                // Segments with `?` can span a variable number of bytes, so try each candidate.
                if isFirst && anchoredStart {
                    return match(segment, in: text, at: 0) == text.count
                }
                var candidate = position
                while candidate <= text.count {
                    if match(segment, in: text, at: candidate) == text.count { return true }
                    candidate += 1
                }
                return false
            }
            if isFirst && anchoredStart {
                guard let end = match(segment, in: text, at: 0) else { return false }
                position = end
                continue
            }
            // Leftmost occurrence after the previous segment.
            var candidate = position
            var found: Int?
            while candidate <= text.count {
                if let end = match(segment, in: text, at: candidate) {
                    found = end
                    break
                }
                candidate += 1
            }
            guard let end = found else { return false }
            position = end
        }
        return true
    }
}
