-- Specs of the combinators: tide.all, tide.race, tide.any, tide.settled.
local tide = require "tide"

local function later(s, ...)
  local values = table.pack(...)
  return tide.sleep(s):next(function() return table.unpack(values, 1, values.n) end)
end

local function fail_later(s, err)
  return tide.sleep(s):next(function() error(err, 0) end)
end

describe("tide combinators", function()
  describe("all", function()
    it("fulfils with the first value of each promise, in order", async(function()
      assert.same({ "a", "b", 3 }, { tide.all{ later(0.02, "a"), later(0.01, "b", "extra"), 3 }:await() })
    end))

    it("rejects with the first rejection", async(function()
      local ok, err = pcall(tide.await, tide.all{ later(0.05, 1), fail_later(0.01, "first"), fail_later(0.02, "second") })
      assert.same({ false, "first" }, { ok, err })
    end))

    it("fulfils at once with nothing for an empty list", async(function()
      assert.equal(0, select("#", tide.all{}:await()))
    end))

    it("keeps nil values in place", async(function()
      local r = table.pack(tide.all{ tide.resolved(nil), tide.resolved(2) }:await())
      assert.equal(2, r.n)
      assert.is_nil(r[1])
      assert.equal(2, r[2])
    end))
  end)

  describe("race", function()
    it("settles as the first promise to settle", async(function()
      assert.same({ "fast", 1 }, { tide.race{ later(0.05, "slow"), later(0.001, "fast", 1) }:await() })
      assert.same({ false, "boom" }, { pcall(tide.await, tide.race{ later(0.05, "slow"), fail_later(0.001, "boom") }) })
    end))
  end)

  describe("any", function()
    it("fulfils with the first fulfilment, ignoring rejections", async(function()
      assert.equal("ok", tide.any{ fail_later(0.001, "x"), later(0.01, "ok") }:await())
    end))

    it("rejects with EAGGREGATE and every error when all reject", async(function()
      local ok, err = pcall(tide.await, tide.any{ fail_later(0.001, "x"), fail_later(0.002, "y") })
      assert.is_false(ok)
      assert.equal("EAGGREGATE", err.code)
      assert.same({ "x", "y" }, err.errors)
    end))
  end)

  describe("settled", function()
    it("fulfils with the outcome of every promise", async(function()
      local a, b = tide.settled{ later(0.001, "v", 2), fail_later(0.002, "e") }:await()
      assert.equal("fulfilled", a.status)
      assert.equal("v", a.value)
      assert.equal(2, a.n)
      assert.equal(2, a[2])
      assert.equal("rejected", b.status)
      assert.equal("e", b.error)
    end))

    it("marks the rejections it saw as handled", function()
      local _, err, status = run_tide([[-e 'tide.settled{ tide.rejected("quiet") }:await()']])
      assert.equal("", err)
      assert.equal(0, status)
    end)
  end)
end)
