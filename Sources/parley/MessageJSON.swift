import ParleyRecords
import ParleySIP

/// A JSON view of a message's typed fields, for `parley sip parse --json`.
enum MessageJSON {
    static func render(_ m: SIPMessage) -> String {
        var o = JSONObject()
        switch m.startLine {
        case .request(let method, let uri, let version):
            o["kind"] = .string("request")
            o["method"] = .string(method.rawValue)
            o["uri"] = uriJSON(uri)
            o["version"] = .string(version)
        case .response(let version, let code, let reason):
            o["kind"] = .string("response")
            o["version"] = .string(version)
            o["status"] = .number(Double(code))
            o["reason"] = .string(reason)
        }
        o["call_id"] = m.callID.map(JSON.string) ?? .null
        if let c = try? m.cseq() {
            o["cseq"] = .object(JSONObject([("seq", .number(Double(c.sequence))), ("method", .string(c.method.rawValue))]))
        }
        if let f = try? m.from() { o["from"] = addressJSON(f) }
        if let t = try? m.to() { o["to"] = addressJSON(t) }
        if let vias = try? m.vias() {
            o["via"] = .array(vias.map { v in
                var vo = JSONObject()
                vo["transport"] = .string(v.transport)
                vo["host"] = .string(v.host.address)
                vo["port"] = v.port.map { .number(Double($0)) } ?? .null
                vo["branch"] = v.branch.map(JSON.string) ?? .null
                vo["received"] = v.received.map(JSON.string) ?? .null
                vo["rport"] = v.rport.map { $0.map { .number(Double($0)) } ?? .bool(true) } ?? .null
                vo["maddr"] = v.maddr.map(JSON.string) ?? .null
                vo["params"] = paramsJSON(v.parameters)
                return .object(vo)
            })
        }
        if let mf = try? m.maxForwards() { o["max_forwards"] = .number(Double(mf)) }
        if let contacts = try? m.contacts(), !contacts.isEmpty {
            o["contact"] = .array(contacts.map { c in
                switch c {
                case .wildcard: return .string("*")
                case .address(let a):
                    var co = addressObject(a)
                    co["q"] = c.q.map { .number($0) } ?? .null
                    co["expires"] = c.expires.map { .number(Double($0)) } ?? .null
                    return .object(co)
                }
            })
        }
        for (key, list) in [("route", try? m.routes()), ("record_route", try? m.recordRoutes()), ("path", try? m.paths())] {
            if let list, !list.isEmpty { o[key] = .array(list.map(addressJSON)) }
        }
        if let ct = try? m.contentType() { o["content_type"] = .string(ct.description) }
        if let e = try? m.expires() { o["expires"] = .number(Double(e)) }
        for (key, known) in [("require", KnownHeader.require), ("supported", .supported), ("proxy_require", .proxyRequire)] {
            let tags = m.optionTags(known)
            if !tags.isEmpty { o[key] = .array(tags.map(JSON.string)) }
        }
        o["headers"] = .array(m.headers.map { h in .object(JSONObject([("name", .string(h.name)), ("value", .string(h.value))])) })
        o["body_length"] = .number(Double(m.body.count))
        o["body"] = .string(m.bodyText)
        return JSON.object(o).render()
    }

    static func uriJSON(_ uri: URI) -> JSON {
        var o = JSONObject()
        o["text"] = .string(uri.description)
        o["scheme"] = .string(uri.scheme)
        switch uri {
        case .sip(let u):
            o["user"] = u.user.map(JSON.string) ?? .null
            o["password"] = u.password.map(JSON.string) ?? .null
            o["host"] = .string(u.host.address)
            o["port"] = u.port.map { .number(Double($0)) } ?? .null
            o["params"] = paramsJSON(u.parameters)
            o["headers"] = paramsJSON(u.headers)
        case .tel(let t):
            o["number"] = .string(t.number)
            o["params"] = paramsJSON(t.parameters)
        case .other:
            break
        }
        return .object(o)
    }

    static func addressObject(_ a: NameAddress) -> JSONObject {
        var o = JSONObject()
        o["display_name"] = a.displayName.map(JSON.string) ?? .null
        o["uri"] = uriJSON(a.uri)
        o["tag"] = a.tag.map(JSON.string) ?? .null
        o["params"] = paramsJSON(a.parameters)
        return o
    }

    static func addressJSON(_ a: NameAddress) -> JSON { .object(addressObject(a)) }

    static func paramsJSON(_ ps: [SIPParameter]) -> JSON {
        .object(JSONObject(ps.map { ($0.name, $0.value.map(JSON.string) ?? .bool(true)) }))
    }
}

/// An ordered JSON object.
struct JSONObject {
    var pairs: [(String, JSON)] = []
    init(_ pairs: [(String, JSON)] = []) { self.pairs = pairs }
    subscript(key: String) -> JSON? {
        get { pairs.first { $0.0 == key }?.1 }
        set {
            pairs.removeAll { $0.0 == key }
            if let newValue { pairs.append((key, newValue)) }
        }
    }
}

indirect enum JSON {
    case string(String), number(Double), bool(Bool), null, array([JSON]), object(JSONObject)

    func render(indent: String = "") -> String {
        switch self {
        case .string(let s): return JSON.quote(s)
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let a):
            if a.isEmpty { return "[]" }
            let inner = indent + "  "
            return "[\n" + a.map { inner + $0.render(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let o):
            if o.pairs.isEmpty { return "{}" }
            let inner = indent + "  "
            return "{\n" + o.pairs.map { inner + JSON.quote($0.0) + ": " + $0.1.render(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = ""
        JSONValue.quote(s, into: &out)
        return out
    }
}
