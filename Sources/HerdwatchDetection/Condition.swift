/// A Sigma condition, compiled: selections by index.
indirect enum ConditionNode: Sendable, Hashable {
    case selection(Int)
    case and([ConditionNode])
    case or([ConditionNode])
    case not(ConditionNode)
    /// `N of x*`: at least N of the nodes hold.
    case atLeast(Int, [ConditionNode])
}

/// Parses `selection and not 1 of filter_* or (a and b)`: precedence not > and > or, parentheses,
/// `1 of`, `any of`, `all of` (`N of` for other counts) over a name, a `name*` pattern or `them`
/// (every selection whose name does not start with `_`).
struct ConditionParser {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private var tokens: [String]
    private var position = 0
    private let names: [String]

    init(_ text: String, selections names: [String]) throws {
        self.names = names
        var tokens: [String] = []
        var current = ""
        for character in text {
            if character == "(" || character == ")" || character.isWhitespace {
                if !current.isEmpty { tokens.append(current) }
                current = ""
                if !character.isWhitespace { tokens.append(String(character)) }
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { tokens.append(current) }
        if tokens.contains("|") || text.contains(" | ") {
            throw Failure(description: "condition '\(text)': aggregations after '|' (count() by ...) are deprecated in Sigma; write a correlation rule instead")
        }
        self.tokens = tokens
    }

    mutating func parse() throws -> ConditionNode {
        let node = try parseOr()
        if position < tokens.count { throw Failure(description: "unexpected '\(tokens[position])' in condition") }
        return node
    }

    private mutating func peek() -> String? { position < tokens.count ? tokens[position] : nil }

    private mutating func parseOr() throws -> ConditionNode {
        var nodes = [try parseAnd()]
        while peek()?.lowercased() == "or" {
            position += 1
            nodes.append(try parseAnd())
        }
        return nodes.count == 1 ? nodes[0] : .or(nodes)
    }

    private mutating func parseAnd() throws -> ConditionNode {
        var nodes = [try parseNot()]
        while peek()?.lowercased() == "and" {
            position += 1
            nodes.append(try parseNot())
        }
        return nodes.count == 1 ? nodes[0] : .and(nodes)
    }

    private mutating func parseNot() throws -> ConditionNode {
        if peek()?.lowercased() == "not" {
            position += 1
            return .not(try parseNot())
        }
        return try parseAtom()
    }

    private mutating func parseAtom() throws -> ConditionNode {
        guard let token = peek() else { throw Failure(description: "condition ends where a selection was expected") }
        position += 1
        if token == "(" {
            let node = try parseOr()
            guard peek() == ")" else { throw Failure(description: "missing ')' in condition") }
            position += 1
            return node
        }
        let lower = token.lowercased()
        if lower == "all" || lower == "any" || Int(lower) != nil, peek()?.lowercased() == "of" {
            position += 1
            guard let target = peek() else { throw Failure(description: "'\(token) of' without a selection name or pattern") }
            position += 1
            let matched: [String]
            if target.lowercased() == "them" {
                matched = names.filter { !$0.hasPrefix("_") }
            } else if target.hasSuffix("*") || target.contains("*") {
                let pattern = StringPattern(sigma: target, cased: true)
                matched = names.filter { pattern.matches($0) }
            } else {
                matched = names.filter { $0 == target }
            }
            guard !matched.isEmpty else { throw Failure(description: "'\(token) of \(target)': no selection matches '\(target)'") }
            let nodes = matched.map { ConditionNode.selection(names.firstIndex(of: $0)!) }
            switch lower {
            case "all": return nodes.count == 1 ? nodes[0] : .and(nodes)
            case "any", "1": return nodes.count == 1 ? nodes[0] : .or(nodes)
            default: return .atLeast(Int(lower)!, nodes)
            }
        }
        if ["and", "or", "of", ")"].contains(lower) { throw Failure(description: "unexpected '\(token)' in condition") }
        guard let index = names.firstIndex(of: token) else {
            throw Failure(description: "condition names '\(token)', which is not a selection of this rule")
        }
        return .selection(index)
    }
}
