import DaxshareMount
import Testing

@Suite struct MountOptionsTests {
    @Test func oursAreTakenTheRestGoToLibfuse() throws {
        let o = try MountOptions(parsing: ["rw,secret-file=/etc/daxshare/secret,allow_other", "cache=cached,attr-timeout=0.5,two-sided,noatime,poll"])
        #expect(o.secretFile == "/etc/daxshare/secret")
        #expect(o.cache == .cached)
        #expect(o.attributeTimeout == 0.5)
        #expect(o.twoSided)
        #expect(o.poll)
        #expect(o.fuseOptions == ["rw", "allow_other", "noatime"])
    }

    @Test func readersAndMaxWriteAreOursWithDefaults() throws {
        let defaults = try MountOptions(parsing: ["rw"])
        #expect(defaults.readers == 2)
        #expect(defaults.maxWrite == 1 << 20)
        let o = try MountOptions(parsing: ["readers=4,max_write=262144"])
        #expect(o.readers == 4)
        #expect(o.maxWrite == 262_144)
        #expect(o.fuseOptions.isEmpty)
    }

    @Test func fstabsOwnOptionsAreDropped() throws {
        let o = try MountOptions(parsing: ["defaults,_netdev,nofail,noauto,x-systemd.automount,user,identity=alice"])
        #expect(o.fuseOptions.isEmpty)
        #expect(o.identity == "alice")
        #expect(o.cache == .direct)
        #expect(o.attributeTimeout == 1)
    }

    @Test(arguments: ["secret-file", "secret-file=", "cache=sometimes", "attr-timeout=-1", "attr-timeout=x",
                      "queue-depth=0", "two-sided=yes", "poll=1", "fsname=x",
                      "readers=0", "readers=17", "max_write=1000", "max_write=2097152", "max_write="])
    func aBadOptionIsAnError(_ item: String) {
        #expect(throws: MountOptionError.self) { try MountOptions(parsing: [item]) }
    }
}
