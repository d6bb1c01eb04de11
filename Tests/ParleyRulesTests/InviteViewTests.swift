import ParleySIP
import Testing

@testable import ParleyRules

/// The view is written straight into its packed form (what the shim reads); its fields and
/// headers are read back from that form.
@Suite struct InviteViewPackingTests {
    @Test func fieldsAndHeadersReadBackFromThePackedForm() {
        let v = invite()
        #expect(v[.method] == "INVITE")
        #expect(v[.uriUser] == "+18005550100" && v[.uriHost] == "cc.example.com")
        #expect(v[.fromDisplay] == "Alice Example" && v[.fromUser] == "alice")
        #expect(v[.callID] == "a84b4c76e66710@198.51.100.7")
        #expect(v[.source] == "198.51.100.7:5060" && v[.transport] == "udp")
        #expect(v[.contentType] == "application/sdp" && v[.body] == "v=0\n")
        #expect(v.fields.count == InviteView.Field.allCases.count && v.fields[InviteView.Field.uri.rawValue] == v[.uri])
        let h = v.headers
        // compact forms under their long names, lists split, unknown names lower-cased
        #expect(h.filter { $0.name == "subject" }.map(\.value) == ["Refund please"])
        #expect(h.filter { $0.name == "accept-language" }.map(\.value) == ["fr", "en;q=0.5", "de"])
        #expect(h.filter { $0.name == "x-tenant" }.map(\.value) == ["blue"])
        #expect(h.first?.name == "via" && h.count == 14)
        #expect(v.header("S") == "Refund please" && v.header("X-None") == nil)
        // the same packed form as a view built from those values
        #expect(InviteView(fields: v.fields, headers: h) == v)
    }
}
