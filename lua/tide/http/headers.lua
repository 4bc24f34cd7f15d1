-- tide.http.headers: an ordered collection of HTTP header fields.
--
-- Owns field storage for requests, responses and trailers: fields keep the
-- order they were added in (repeated names included), names keep the case
-- they were given in, and lookup is case-insensitive through an index of
-- lowercased names. Names must be RFC 9110 tokens and values must not hold
-- CR, LF or NUL; `set` and `append` raise at once otherwise, so a headers
-- object can always be serialized without header injection.
--
-- Layout (private to this module; tide.fields, the C splitter the parser
-- uses, fills the same slots): field i lives in the object's array part as
-- three slots, [3i-2] = name, [3i-1] = lowercased name, [3i] = value; `n`
-- is the number of fields and `_index` maps a lowercased name to the
-- position of its first field. Other modules go through the functions
-- below (the underscored ones are for tide.http's own trusted callers).
-- A server response keeps the fields its handler sets in the same layout
-- without the index (most responses are looked up in rarely): the
-- `fields` functions at the end work on such a list. The token and
-- field-value checks live here too, once.

local find, lower, type, tostring = string.find, string.lower, type, tostring
local concat, sort = table.concat, table.sort
local error, setmetatable, getmetatable = error, setmetatable, getmetatable

local methods = {}
local mt = {
  __name = "tide.http.headers",
  __index = methods,
}

-- A token (RFC 9110 section 5.6.2) and the bytes a field value may not hold.
local TCHAR = "[!#$%%&'*+%-.^_`|~0-9A-Za-z]"
local TOKEN = "^" .. TCHAR .. "+$"
local BAD_VALUE = "[\0\r\n]"

local function check_name(name, level)
  if type(name) ~= "string" then
    error("header name must be a string, got " .. type(name), level + 1)
  end
  if not find(name, TOKEN) then
    error(("invalid header name %q (must be an RFC 9110 token)"):format(name),
      level + 1)
  end
end

local function check_value(name, value, level)
  local t = type(value)
  if t == "number" then
    value = tostring(value)
  elseif t ~= "string" then
    error(("value of header %q must be a string, got %s"):format(name, t),
      level + 1)
  end
  if find(value, BAD_VALUE) then
    error(("invalid value for header %q (CR, LF or NUL)"):format(name),
      level + 1)
  end
  return value
end

-- Appends a field without validation. Private: for trusted callers (the
-- h1 parser, which validated the bytes already) that also supply the
-- lowercased name.
function methods:_add(name, lname, value)
  local n = self.n + 1
  local k = 3 * n
  self[k - 2], self[k - 1], self[k] = name, lname, value
  self.n = n
  local index = self._index
  if not index[lname] then index[lname] = n end
end

-- Rebuilds `_index` after fields moved.
local function reindex(self)
  local index = {}
  for i = self.n, 1, -1 do
    index[self[3 * i - 1]] = i
  end
  self._index = index
end

-- Removes from the field list `t` every field whose lowercased name is
-- `lname`, from position `from` on (1 when nil), keeping the others in
-- order; leaves the field at position `keep` (if any) in place. Returns
-- how many went. Does not touch an index.
local function remove_fields(t, lname, from, keep)
  local n, removed = t.n, 0
  from = from or 1
  local j = from - 1
  for i = from, n do
    local k = 3 * i
    if t[k - 1] == lname and i ~= keep then
      removed = removed + 1
    else
      j = j + 1
      if j ~= i then
        local kj = 3 * j
        t[kj - 2], t[kj - 1], t[kj] = t[k - 2], t[k - 1], t[k]
      end
    end
  end
  for k = 3 * j + 1, 3 * n do t[k] = nil end
  t.n = j
  return removed
end

-- remove_fields for a headers object, whose index then changes.
local function compact(self, lname, keep)
  local removed = remove_fields(self, lname, 1, keep)
  if removed > 0 then reindex(self) end
  return removed
end

--- Appends a field after the existing ones, even if the name is present.
-- Returns the headers object.
function methods:append(name, value)
  check_name(name, 2)
  value = check_value(name, value, 2)
  self:_add(name, lower(name), value)
  return self
end

--- Sets a field, replacing every field of that name. The first existing
-- field keeps its position (and takes the new name spelling); if there was
-- none the field is appended. Returns the headers object.
function methods:set(name, value)
  check_name(name, 2)
  value = check_value(name, value, 2)
  local lname = lower(name)
  local i = self._index[lname]
  if not i then
    self:_add(name, lname, value)
    return self
  end
  local k = 3 * i
  self[k - 2], self[k] = name, value
  -- Only scan when another field of this name may follow.
  for j = i + 1, self.n do
    if self[3 * j - 1] == lname then
      compact(self, lname, i)
      break
    end
  end
  return self
end

--- Returns the value of the first field named `name` (any case), or nil.
function methods:get(name)
  local i = self._index[lower(name)]
  if i then return self[3 * i] end
  return nil
end

--- Returns a new list of the values of every field named `name`, in order;
-- an empty list when there is none.
function methods:get_all(name)
  local lname = lower(name)
  local list, i = {}, self._index[lname]
  if not i then return list end
  local m = 0
  for j = i, self.n do
    if self[3 * j - 1] == lname then
      m = m + 1
      list[m] = self[3 * j]
    end
  end
  return list
end

--- Returns the values of every field named `name` joined with ", " (the
-- list form of RFC 9110 section 5.3), or nil when there is none.
function methods:get_joined(name)
  local lname = lower(name)
  local i = self._index[lname]
  if not i then return nil end
  local first = self[3 * i]
  local list
  for j = i + 1, self.n do
    if self[3 * j - 1] == lname then
      list = list or { first }
      list[#list + 1] = self[3 * j]
    end
  end
  return list and concat(list, ", ") or first
end

--- Returns true when a field named `name` (any case) is present.
function methods:has(name)
  return self._index[lower(name)] ~= nil
end

--- Removes every field named `name`; returns how many were removed.
function methods:remove(name)
  local lname = lower(name)
  if not self._index[lname] then return 0 end
  return compact(self, lname, nil)
end

--- Returns the number of fields (repeated names count once per field).
function methods:len()
  return self.n
end

-- Private: the number of fields whose lowercased name is `lname`.
function methods:_count(lname)
  local i = self._index[lname]
  if not i then return 0 end
  local c = 0
  for j = i, self.n do
    if self[3 * j - 1] == lname then c = c + 1 end
  end
  return c
end

-- Private: the value of the first field whose lowercased name is `lname`.
function methods:_first(lname)
  local i = self._index[lname]
  return i and self[3 * i]
end

-- Appends the field lines of the field list `t` ("Name: value\r\n") to
-- the array `buf` from position `n`, leaving out the fields whose
-- lowercased name is a key of `skip` (when given); returns the new last
-- position.
local function put_fields(t, buf, n, skip)
  for i = 1, t.n do
    local k = 3 * i
    if not (skip and skip[t[k - 1]]) then
      buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4] = t[k - 2], ": ", t[k], "\r\n"
      n = n + 4
    end
  end
  return n
end

-- Private: put_fields for a headers object.
methods._put = put_fields

--- Returns an iterator over the fields in order, yielding name (as given)
-- and value. Modifying the object while iterating is not supported.
function methods:each()
  local i = 0
  return function()
    i = i + 1
    if i > self.n then return nil end
    local k = 3 * i
    return self[k - 2], self[k]
  end
end

--- Returns an independent copy.
function methods:clone()
  local c = setmetatable({ n = self.n, _index = {} }, mt)
  for k = 1, 3 * self.n do c[k] = self[k] end
  for lname, i in pairs(self._index) do c._index[lname] = i end
  return c
end

mt.__len = methods.len
mt.__pairs = function(self) return methods.each(self), self, nil end
mt.__tostring = function(self)
  local parts = {}
  for i = 1, self.n do
    local k = 3 * i
    parts[i] = ("%q: %q"):format(self[k - 2], self[k])
  end
  return "tide.http.headers{" .. concat(parts, ", ") .. "}"
end

--[[ Creates a headers object. `init` is optional and may be:
  - a list of {name, value} pairs, added in order:
      headers.new{ {"Host", "a"}, {"Accept", "*/*"} }
  - a map of name -> value, or name -> list of values for repeated fields;
    names are added in sorted order so the result is deterministic:
      headers.new{ ["Content-Type"] = "text/plain", ["Set-Cookie"] = {"a", "b"} }
  - another headers object, which is copied.
Every name and value is validated as by `append`. ]]
local function new(init)
  local self = setmetatable({ n = 0, _index = {} }, mt)
  if init == nil then return self end
  if getmetatable(init) == mt then return init:clone() end
  if type(init) ~= "table" then
    error("headers.new expects a table, got " .. type(init), 2)
  end
  if init[1] ~= nil then
    for i = 1, #init do
      local pair = init[i]
      if type(pair) ~= "table" then
        error(("headers.new: entry %d is not a {name, value} pair"):format(i), 2)
      end
      local name, value = pair[1], pair[2]
      check_name(name, 2)
      self:_add(name, lower(name), check_value(name, value, 2))
    end
    return self
  end
  local names = {}
  for name in pairs(init) do
    check_name(name, 2)
    names[#names + 1] = name
  end
  sort(names)
  for _, name in ipairs(names) do
    local value, lname = init[name], lower(name)
    if type(value) == "table" then
      for _, v in ipairs(value) do
        self:_add(name, lname, check_value(name, v, 2))
      end
    else
      self:_add(name, lname, check_value(name, value, 2))
    end
  end
  return self
end

-- Private: makes a headers object of what tide.fields returned (the
-- table `t` of `n` fields and its index).
local function from_fields(t, n, index)
  t.n, t._index = n, index
  return setmetatable(t, mt)
end

--------------------------------------------------------------------------
-- Field lists without an index (a server response's own fields): `t.n`
-- fields in the layout above. Names must be checked by the caller
-- (check_name) and `lname` be lower(name).

-- Sets the field `lname`: the first field of that name takes `name` and
-- `value` and any later one goes; appended when there is none.
local function set_field(t, name, lname, value)
  local n = t.n
  for i = 1, n do
    local k = 3 * i
    if t[k - 1] == lname then
      t[k - 2], t[k] = name, value
      if i < n then remove_fields(t, lname, i + 1) end
      return
    end
  end
  local k = 3 * n
  t[k + 1], t[k + 2], t[k + 3] = name, lname, value
  t.n = n + 1
end

-- Appends a field, even if the name is present.
local function add_field(t, name, lname, value)
  local n = t.n
  local k = 3 * n
  t[k + 1], t[k + 2], t[k + 3] = name, lname, value
  t.n = n + 1
end

-- The value of the first field named `lname`, or nil.
local function get_field(t, lname)
  for i = 1, t.n do
    if t[3 * i - 1] == lname then return t[3 * i] end
  end
  return nil
end

-- Removes every field.
local function clear_fields(t)
  for k = 1, 3 * t.n do t[k] = nil end
  t.n = 0
end

-- The field lines of `t` as one string, without the fields whose
-- lowercased name is a key of `skip`.
local function field_lines(t, skip)
  local n = t.n
  if n == 0 then return "" end
  if n == 1 and not skip[t[2]] then return t[1] .. ": " .. t[3] .. "\r\n" end
  local buf = {}
  put_fields(t, buf, 0, skip)
  return concat(buf)
end

return {
  new = new,
  methods = methods,
  mt = mt,
  from_fields = from_fields,
  -- The one definition of a token and the checks of names and values:
  -- check_name(name, level) and check_value(name, value, level) raise at
  -- `level`; check_value returns the value as a string (numbers allowed).
  TCHAR = TCHAR,
  TOKEN = TOKEN,
  check_name = check_name,
  check_value = check_value,
  -- Field lists without an index (see above).
  fields = {
    set = set_field,
    add = add_field,
    get = get_field,
    remove = remove_fields,
    clear = clear_fields,
    lines = field_lines,
  },
}
