-- Specs of tide.dns: lookup and reverse lookup. There is no outside
-- network here: only names that resolve locally (/etc/hosts) or fail fast.
local tide = require "tide"

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

describe("tide.dns", function()
  describe("lookup", function()
    it("resolves localhost to a list of addresses and the first one's family", async(function()
      local addrs, family = tide.dns.lookup("localhost"):await()
      assert.is_true(#addrs >= 1)
      assert.is_true(contains(addrs, "127.0.0.1") or contains(addrs, "::1"))
      assert.equal(addrs[1]:find(":") and 6 or 4, family)
      local seen = {}
      for _, a in ipairs(addrs) do
        assert.is_nil(seen[a], "repeated address " .. a)
        seen[a] = true
      end
    end))

    it("keeps to the family asked for", async(function()
      local addrs, family = tide.dns.lookup("localhost", { family = 4 }):await()
      assert.equal(4, family)
      for _, a in ipairs(addrs) do assert.is_nil(a:find(":"), a) end
      assert.is_true(contains(addrs, "127.0.0.1"))
    end))

    it("gives a numeric address back at once", async(function()
      local p = tide.dns.lookup("127.0.0.1")
      assert.equal("fulfilled", p:state())
      assert.same({ { "127.0.0.1" }, 4 }, { p:await() })
      assert.same({ { "::1" }, 6 }, { tide.dns.lookup("::1"):await() })
    end))

    it("rejects an unknown name with an EAI_ error object naming it", async(function()
      local ok, err = pcall(tide.await, tide.dns.lookup("no-such-host.invalid", { timeout = 8 }))
      assert.is_false(ok)
      assert.is_true(tide.is_error(err))
      assert.is_truthy(err.code:match("^EAI_"), tostring(err))
      assert.equal("no-such-host.invalid", err.subject)
      assert.is_truthy(tostring(err):find(": no-such-host.invalid", 1, true))
      assert.is_nil(tostring(err):find("\n"))
    end))

    it("rejects an address of the other family", async(function()
      local ok, err = pcall(tide.await, tide.dns.lookup("127.0.0.1", { family = 6 }))
      assert.is_false(ok)
      assert.is_truthy(err.code:match("^EAI_"), tostring(err))
    end))

    it("refuses bad arguments at once", function()
      assert.has_error(function() tide.dns.lookup() end)
      assert.has_error(function() tide.dns.lookup("a\0b") end)
      assert.has_error(function() tide.dns.lookup("localhost", { family = 5 }) end)
      assert.has_error(function() tide.dns.lookup("localhost", { timeout = -1 }) end)
      assert.has_error(function() tide.dns.lookup("localhost", "x") end)
    end)

    it("can be cancelled", async(function()
      local p = tide.dns.lookup("localhost")
      assert.is_true(p:cancel())
      assert.same({ false, tide.Cancelled }, { pcall(tide.await, p) })
      -- many lookups at once, half cancelled: the rest still resolve
      local ps = {}
      for i = 1, 40 do ps[i] = tide.dns.lookup("localhost") end
      for i = 1, 40, 2 do ps[i]:cancel() end
      for i = 2, 40, 2 do assert.is_true(#ps[i]:await() >= 1) end
    end))
  end)

  describe("reverse", function()
    it("gives the host name of 127.0.0.1", async(function()
      local name = tide.dns.reverse("127.0.0.1"):await()
      assert.equal("string", type(name))
      assert.is_true(#name > 0)
      local addrs = tide.dns.lookup(name, { family = 4 }):await()
      assert.is_true(contains(addrs, "127.0.0.1"))
    end))

    it("refuses what is not a numeric address", function()
      assert.has_error(function() tide.dns.reverse("localhost") end,
        "bad argument #1 to 'reverse' (not a numeric IPv4 or IPv6 address)")
      assert.has_error(function() tide.dns.reverse() end)
    end)

    it("rejects an address without a name (or resolves it) without hanging", async(function()
      local ok, res = pcall(tide.await, tide.dns.reverse("192.0.2.123", { timeout = 8 }))
      if ok then
        assert.equal("string", type(res))
      else
        assert.is_true(tide.is_error(res), tostring(res))
        assert.is_truthy(res.code == "ETIMEDOUT" or res.code:match("^EAI_"), tostring(res))
      end
    end))
  end)
end)
