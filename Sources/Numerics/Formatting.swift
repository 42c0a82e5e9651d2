// How descent writes numbers, durations and fields in text it prints or saves: one home for every formatter.

/// A number with a fixed count of decimals, without Foundation's String(format:); a value too large for that
/// (a diverged loss) as Swift prints it.
public func fixed(_ x: Double, _ decimals: Int) -> String {
    var p = 1.0
    for _ in 0..<decimals { p *= 10 }
    guard x.isFinite, abs(x) * p < 1e15 else { return "\(x)" }
    let r = (abs(x) * p).rounded()
    let whole = Int(r / p), fraction = Int(r - Double(whole) * p)
    var f = String(fraction)
    while f.count < decimals { f = "0" + f }
    return (x < 0 && r != 0 ? "-" : "") + String(whole) + (decimals > 0 ? "." + f : "")
}

/// A number to `digits` significant digits: 12.35, 0.001235, 1235; beyond 10⁻³…10⁶ in scientific notation (1.235e+07).
public func significant(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite, x != 0 else { return x == 0 ? "0" : "\(x)" }
    var exponent = 0, m = abs(x)
    while m >= 10 { m /= 10; exponent += 1 }
    while m < 1 { m *= 10; exponent -= 1 }
    if exponent >= -3 && exponent < 6 { return fixed(x, max(0, digits - 1 - exponent)) }
    return (x < 0 ? "-" : "") + fixed(m, digits - 1) + (exponent < 0 ? "e-" : "e+") + (abs(exponent) < 10 ? "0" : "") + "\(abs(exponent))"
}

/// A number as people write it: 0.1, 1.5, 1e-05, 300.
public func shortNumber(_ x: Double) -> String {
    let s = "\(x)"
    return s.hasSuffix(".0") ? String(s.dropLast(2)) : s
}

/// "1h02m", "3m05s", "12s".
public func durationText(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0, seconds < 1e12 else { return "?" }
    let s = Int(seconds.rounded())
    func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    if s >= 3600 { return "\(s / 3600)h\(twoDigits((s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(twoDigits(s % 60))s" }
    return "\(s)s"
}

/// A CSV field, quoted when it holds a comma, quote or line break.
public func csvField(_ s: String) -> String {
    guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
    var quoted = "\""
    for c in s { quoted += c == "\"" ? "\"\"" : String(c) }
    return quoted + "\""
}

/// A YAML double-quoted scalar.
public func yamlQuoted(_ s: String) -> String {
    var quoted = "\""
    for c in s {
        switch c {
        case "\\": quoted += "\\\\"
        case "\"": quoted += "\\\""
        default: quoted.append(c)
        }
    }
    return quoted + "\""
}

/// The rows of a CSV text as written with `csvField` (quoted fields may hold commas, quotes and line breaks).
public func csvRows(_ text: String) -> [[String]] {
    var rows: [[String]] = [], row: [String] = [], field = ""
    var quoted = false, wasQuoted = false
    var chars = text.makeIterator()
    var pending: Character? = nil
    while let c = pending ?? chars.next() {
        pending = nil
        if quoted {
            if c == "\"" {
                let next = chars.next()
                if next == "\"" { field.append("\"") } else { (quoted, pending) = (false, next) }
            } else {
                field.append(c)
            }
            continue
        }
        switch c {
        case "\"" where field.isEmpty && !wasQuoted: quoted = true; wasQuoted = true
        case ",": row.append(field); field = ""; wasQuoted = false
        case "\n", "\r\n":
            row.append(field); rows.append(row); row = []; field = ""; wasQuoted = false
        default: field.append(c)
        }
    }
    if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
    return rows
}
