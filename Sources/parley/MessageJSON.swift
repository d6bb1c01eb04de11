import ParleyRecords
import ParleySIP

/// A JSON view of a message's typed fields, for `parley sip parse --json`.
enum MessageJSON {
    typealias Field = JSONValue.Field

    static func render(_ m: SIPMessage) -> String {
        var o: [Field] = []
        switch m.startLine {
        case .request(let method, let uri, let version):
            o += [Field("kind", .string("request")), Field("method", .string(method.rawValue)), Field("uri", uriJSON(uri)),
                  Field("version", .string(version))]
        case .response(let version, let code, let reason):
            o += [Field("kind", .string("response")), Field("version", .string(version)), Field("status", .number(code)),
                  Field("reason", .string(reason))]
        }
        o.append(Field("call_id", .optional(m.callID)))
        if let c = try? m.cseq() {
            o.append(Field("cseq", .object([Field("seq", .int(Int64(c.sequence))), Field("method", .string(c.method.rawValue))])))
        }
        if let f = try? m.from() { o.append(Field("from", addressJSON(f))) }
        if let t = try? m.to() { o.append(Field("to", addressJSON(t))) }
        if let vias = try? m.vias() {
            o.append(Field("via", .array(vias.map { v in
                .object([
                    Field("transport", .string(v.transport)), Field("host", .string(v.host.address)),
                    Field("port", v.port.map { .number(Int($0)) } ?? .null), Field("branch", .optional(v.branch)),
                    Field("received", .optional(v.received)),
                    Field("rport", v.rport.map { $0.map { .number(Int($0)) } ?? .bool(true) } ?? .null),
                    Field("maddr", .optional(v.maddr)), Field("params", paramsJSON(v.parameters)),
                ])
            })))
        }
        if let mf = try? m.maxForwards() { o.append(Field("max_forwards", .number(Int(mf)))) }
        if let contacts = try? m.contacts(), !contacts.isEmpty {
            o.append(Field("contact", .array(contacts.map { c in
                switch c {
                case .wildcard: return .string("*")
                case .address(let a):
                    return .object(addressFields(a) + [Field("q", c.q.map { .double($0) } ?? .null),
                                                       Field("expires", c.expires.map { .int(Int64($0)) } ?? .null)])
                }
            })))
        }
        for (key, list) in [("route", try? m.routes()), ("record_route", try? m.recordRoutes()), ("path", try? m.paths())] {
            if let list, !list.isEmpty { o.append(Field(key, .array(list.map(addressJSON)))) }
        }
        if let ct = try? m.contentType() { o.append(Field("content_type", .string(ct.description))) }
        if let e = try? m.expires() { o.append(Field("expires", .int(Int64(e)))) }
        for (key, known) in [("require", KnownHeader.require), ("supported", .supported), ("proxy_require", .proxyRequire)] {
            let tags = m.optionTags(known)
            if !tags.isEmpty { o.append(Field(key, .array(tags.map { .string($0) }))) }
        }
        o.append(Field("headers", .array(m.headers.map { h in .object([Field("name", .string(h.name)), Field("value", .string(h.value))]) })))
        o.append(Field("body_length", .number(m.body.count)))
        o.append(Field("body", .string(m.bodyText)))
        return JSONValue.object(o).pretty()
    }

    static func uriJSON(_ uri: URI) -> JSONValue {
        var o = [Field("text", .string(uri.description)), Field("scheme", .string(uri.scheme))]
        switch uri {
        case .sip(let u):
            o += [Field("user", .optional(u.user)), Field("password", .optional(u.password)), Field("host", .string(u.host.address)),
                  Field("port", u.port.map { .number(Int($0)) } ?? .null), Field("params", paramsJSON(u.parameters)),
                  Field("headers", paramsJSON(u.headers))]
        case .tel(let t):
            o += [Field("number", .string(t.number)), Field("params", paramsJSON(t.parameters))]
        case .other:
            break
        }
        return .object(o)
    }

    static func addressFields(_ a: NameAddress) -> [Field] {
        [Field("display_name", .optional(a.displayName)), Field("uri", uriJSON(a.uri)), Field("tag", .optional(a.tag)),
         Field("params", paramsJSON(a.parameters))]
    }

    static func addressJSON(_ a: NameAddress) -> JSONValue { .object(addressFields(a)) }

    /// Parameters in order, as written (a name given twice is there twice).
    static func paramsJSON(_ ps: [SIPParameter]) -> JSONValue {
        .object(ps.map { Field($0.name, $0.value.map { .string($0) } ?? .bool(true)) })
    }
}
