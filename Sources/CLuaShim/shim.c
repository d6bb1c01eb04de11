// The Lua side of Parley's rule engine: sandbox, limits, the rule API values and the hook calls.
// Every public function runs its Lua work through `protect`, a lua_pcall started and ended here,
// so no Lua error ever unwinds into Swift. See include/CLuaShim.h.

#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>
#include <lua5.4/lauxlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "CLuaShim.h"

// MARK: - State

/// How often (in VM instructions) the count hook fires while under budget.
#define HOOK_STEP 1000

struct parley_state {
    lua_State *L;
    parley_config config;
    parley_limits limits;

    // Allocator accounting. The cap applies only while `armed` (inside a protected call).
    size_t used;
    size_t cap;
    int armed;
    int memory_exceeded;

    // Instruction budget and wall-clock bound of the current call.
    int64_t count;
    int64_t budget;
    int64_t deadline_ns;
    int exceeded;  // 0, PARLEY_ERR_BUDGET
    int hook_step;

    // What the current (or last) hook call traced with trace(...): at most PARLEY_TRACE_MAX
    // notes of at most PARLEY_TRACE_LEN bytes each; more is dropped.
    char trace[PARLEY_TRACE_MAX][PARLEY_TRACE_LEN + 1];
    size_t trace_len[PARLEY_TRACE_MAX];
    int trace_count;

    // Where rule code was last seen running (for messages about memory errors).
    char last_source[LUA_IDSIZE];
    int last_line;

    // Registry references.
    int ref_sources;   // module name -> source text
    int ref_displays;  // module name -> display name
    int ref_loaded;    // module name -> value, or the `loading` sentinel
    int ref_compiled;  // module name -> its compiled chunk (set by parley_compile_module)
    int ref_agents;    // slot -> read-only agent
    int ref_agent_data;// slot -> the agent's data table
    int ref_ro_meta_fns; // table {newindex=, pairs=, len=} shared by read-only proxies

    int64_t test_now;  // the settable clock in test mode
    int64_t hook_now;  // now for agents' idle_ms during a hook call (when hook_now_set)
    int hook_now_set;

    char *error;
    size_t error_len;
    int result_error;  // set by result checks (PARLEY_ERR_RESULT)
};

static const char LOADING_SENTINEL = 0;
static const char *INVITE_META = "parley.invite";

static parley_state *state_of(lua_State *L) { return *(parley_state **)lua_getextraspace(L); }

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void set_error(parley_state *S, const char *msg, size_t len) {
    free(S->error);
    S->error = malloc(len + 1);
    if (S->error) {
        memcpy(S->error, msg, len);
        S->error[len] = 0;
        S->error_len = len;
    } else {
        S->error_len = 0;
    }
}

static void set_errorf(parley_state *S, const char *fmt, const char *a, int n, long long x) {
    char buf[512];
    int len = snprintf(buf, sizeof buf, fmt, a, n, x);
    if (len < 0) len = 0;
    if ((size_t)len >= sizeof buf) len = sizeof buf - 1;
    set_error(S, buf, (size_t)len);
}

// MARK: - Allocator with a cap

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    parley_state *S = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        S->used -= old;
        return NULL;
    }
    if (nsize > old && S->armed && S->used + (nsize - old) > S->cap) {
        S->memory_exceeded = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) S->used = S->used - old + nsize;
    return p;
}

static int l_panic(lua_State *L) {
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error object is not a string)";
    fprintf(stderr, "parley: unprotected Lua error (a bug in the rule engine): %s\n", msg);
    fflush(stderr);
    abort();
    return 0;
}

// MARK: - Instruction budget

static void count_hook(lua_State *L, lua_Debug *ar) {
    parley_state *S = state_of(L);
    S->count += S->hook_step;
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0) {
        memcpy(S->last_source, ar->short_src, sizeof S->last_source);
        S->last_line = ar->currentline;
    }
    int over = S->exceeded;
    if (!over && S->budget > 0 && S->count > S->budget) over = 1;
    if (!over && S->deadline_ns > 0 && monotonic_ns() > S->deadline_ns) over = 2;
    if (!over) return;
    if (!S->exceeded) {
        S->exceeded = over;
        // Keep firing on every instruction from now on, so a rule's own pcall cannot swallow it.
        S->hook_step = 1;
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    }
    if (S->exceeded == 2) {
        lua_pushfstring(L, "%s:%d: time limit of %d ms exceeded", ar->short_src, ar->currentline,
                        (int)(S->limits.wall_ns / 1000000));
    } else {
        lua_pushfstring(L, "%s:%d: instruction budget of %I instructions exceeded", ar->short_src, ar->currentline,
                        (lua_Integer)S->limits.instructions);
    }
    lua_error(L);
}

static void arm(parley_state *S) {
    S->count = 0;
    S->exceeded = 0;
    S->memory_exceeded = 0;
    S->result_error = 0;
    S->last_source[0] = 0;
    S->last_line = 0;
    S->budget = S->limits.instructions;
    S->deadline_ns = S->limits.wall_ns > 0 ? monotonic_ns() + S->limits.wall_ns : 0;
    if (S->limits.memory_bytes > 0) {
        S->cap = S->used + (size_t)S->limits.memory_bytes;
        S->armed = 1;
    }
    S->hook_step = HOOK_STEP;
    lua_sethook(S->L, count_hook, LUA_MASKCOUNT, HOOK_STEP);
}

static void disarm(parley_state *S) {
    S->armed = 0;
    S->budget = 0;
    S->deadline_ns = 0;
    lua_sethook(S->L, NULL, 0, 0);
}

// MARK: - Protected calls

/// Whether a message already starts with `something:LINE:`.
static int has_position(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n && i < 300; i++) {
        if (s[i] == ':' && s[i + 1] >= '0' && s[i + 1] <= '9') {
            size_t j = i + 1;
            while (j < n && s[j] >= '0' && s[j] <= '9') j++;
            if (j < n && s[j] == ':') return 1;
        }
        if (s[i] == '\n') return 0;
    }
    return 0;
}

/// Message handler: makes the error a string and prefixes the innermost Lua position if it has none.
static int msgh(lua_State *L) {
    size_t n;
    const char *msg;
    if (lua_type(L, 1) == LUA_TSTRING) {
        msg = lua_tolstring(L, 1, &n);
    } else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
        msg = lua_tolstring(L, -1, &n);
    } else {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        n = strlen(msg);
    }
    if (has_position(msg, n)) {
        lua_pushlstring(L, msg, n);
        return 1;
    }
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            lua_pushfstring(L, "%s:%d: %s", ar.short_src, ar.currentline, msg);
            return 1;
        }
    }
    lua_pushlstring(L, msg, n);
    return 1;
}

/// Runs `f(ud)` in protected mode. With `limited`, the budget and memory cap are armed for it.
static int protect(parley_state *S, lua_CFunction f, void *ud, int limited) {
    lua_State *L = S->L;
    int base = lua_gettop(L);
    S->result_error = 0;
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, ud);
    if (limited) arm(S);
    int status = lua_pcall(L, 1, 0, base + 1);
    int exceeded = S->exceeded, memory = S->memory_exceeded;
    if (limited) disarm(S);
    int result = PARLEY_OK;
    if (status != LUA_OK) {
        if (status == LUA_ERRMEM || (memory && lua_type(L, -1) == LUA_TSTRING && strstr(lua_tostring(L, -1), "not enough memory"))) {
            if (memory) {
                const char *where = S->last_source[0] ? S->last_source : "?";
                set_errorf(S, "%s:%d: memory limit of %lld bytes exceeded", where, S->last_line,
                           (long long)S->limits.memory_bytes);
            } else {
                set_error(S, "not enough memory", 17);
            }
            result = PARLEY_ERR_MEMORY;
        } else {
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t n;
                const char *m = lua_tolstring(L, -1, &n);
                set_error(S, m, n);
            } else {
                const char *tn = lua_typename(L, lua_type(L, -1));
                char buf[128];
                int n = snprintf(buf, sizeof buf, "(error object is a %s value)", tn);
                set_error(S, buf, (size_t)n);
            }
            if (exceeded) result = PARLEY_ERR_BUDGET;
            else if (S->result_error) result = PARLEY_ERR_RESULT;
            else if (status == LUA_ERRSYNTAX) result = PARLEY_ERR_SYNTAX;
            else result = PARLEY_ERR_RUNTIME;
        }
    }
    lua_settop(L, base);
    return result;
}

static void lazy_fill(lua_State *L, int idx);
static int fill_then_call(lua_State *L);

// MARK: - Read-only proxies

static int ro_newindex(lua_State *L) {
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : luaL_typename(L, 2);
    return luaL_error(L, "attempt to set field '%s' of a read-only value", k);
}

static int ro_next(lua_State *L) {
    // upvalue: data table. Arguments: proxy, key.
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushnil(L);
    return 1;
}

/// pairs() over a read-only proxy with `next` as the iterator (its upvalue: the data table).
static int pairs_with(lua_State *L, lua_CFunction next) {
    luaL_getmetafield(L, 1, "__index");
    lua_pushcclosure(L, next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int ro_pairs(lua_State *L) { return pairs_with(L, ro_next); }

static int ro_len(lua_State *L) {
    luaL_getmetafield(L, 1, "__index");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/// Replaces the table at the top of the stack by a read-only proxy of it.
static void make_readonly(lua_State *L) {
    lua_createtable(L, 0, 0);          // data proxy
    lua_createtable(L, 0, 5);          // data proxy meta
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, ro_len);
    lua_setfield(L, -2, "__len");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);           // data proxy
    lua_remove(L, -2);                 // proxy
}

static int l_readonly(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lazy_fill(L, 1);
    make_readonly(L);
    return 1;
}

// MARK: - The INVITE view

enum {
    F_METHOD, F_URI, F_URI_USER, F_URI_HOST, F_FROM, F_FROM_USER, F_FROM_DISPLAY, F_TO, F_TO_USER,
    F_CALL_ID, F_SOURCE, F_TRANSPORT, F_CONTENT_TYPE, F_BODY, F_COUNT
};

static const char *const FIELD_NAMES[F_COUNT] = {
    "method", "uri", "uri_user", "uri_host", "from", "from_user", "from_display", "to", "to_user",
    "call_id", "source", "transport", "content_type", "body",
};

/// The blob (built in Swift): for each field an int32 length (-1 for nil) and its bytes; then a
/// uint32 header count and for each header element a uint32 key length, the key (lower-case
/// canonical name), a uint32 value length and the value. Native byte order.
typedef struct {
    int32_t field_len[F_COUNT];
    uint32_t field_off[F_COUNT];
    uint32_t header_count;
    uint32_t header_off;
    size_t size;
    char data[];
} invite_ud;

static int read_u32(const char *p, size_t size, size_t *pos, uint32_t *out) {
    if (*pos + 4 > size) return 0;
    memcpy(out, p + *pos, 4);
    *pos += 4;
    return 1;
}

/// Pushes a new INVITE view userdata from a blob; raises on a malformed blob.
static void push_invite(lua_State *L, const char *blob, size_t size) {
    invite_ud *u = lua_newuserdatauv(L, sizeof(invite_ud) + size, 0);
    memcpy(u->data, blob, size);
    u->size = size;
    size_t pos = 0;
    for (int i = 0; i < F_COUNT; i++) {
        uint32_t len;
        if (!read_u32(blob, size, &pos, &len)) luaL_error(L, "malformed INVITE view");
        u->field_len[i] = (int32_t)len;
        u->field_off[i] = (uint32_t)pos;
        if ((int32_t)len >= 0) {
            if (pos + len > size) luaL_error(L, "malformed INVITE view");
            pos += len;
        }
    }
    if (!read_u32(blob, size, &pos, &u->header_count)) luaL_error(L, "malformed INVITE view");
    u->header_off = (uint32_t)pos;
    luaL_setmetatable(L, INVITE_META);
}

/// Lower-cases a header name and expands a compact form, as ParleySIP's KnownHeader does.
static size_t normalize_header(parley_state *S, const char *name, size_t n, char *out, size_t cap) {
    if (n == 1) {
        char c = name[0] | 0x20;
        if (c >= 'a' && c <= 'z' && S->config.compact_forms[c - 'a']) {
            const char *full = S->config.compact_forms[c - 'a'];
            size_t m = strlen(full);
            if (m > cap) m = cap;
            memcpy(out, full, m);
            return m;
        }
    }
    if (n > cap) n = cap;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
    }
    return n;
}

/// Pushes every value of header `name` (all = 1) or the first one (all = 0, nil if none).
static int invite_headers_impl(lua_State *L, int all) {
    invite_ud *u = luaL_checkudata(L, 1, INVITE_META);
    size_t n;
    const char *name = luaL_checklstring(L, 2, &n);
    char key[128];
    if (n > sizeof key) {
        if (all) lua_newtable(L); else lua_pushnil(L);
        return 1;
    }
    size_t klen = normalize_header(state_of(L), name, n, key, sizeof key);
    if (all) lua_newtable(L);
    lua_Integer found = 0;
    size_t pos = u->header_off;
    for (uint32_t i = 0; i < u->header_count; i++) {
        uint32_t kl, vl;
        if (!read_u32(u->data, u->size, &pos, &kl) || pos + kl > u->size) break;
        const char *k = u->data + pos;
        pos += kl;
        if (!read_u32(u->data, u->size, &pos, &vl) || pos + vl > u->size) break;
        const char *v = u->data + pos;
        pos += vl;
        if (kl == klen && memcmp(k, key, klen) == 0) {
            lua_pushlstring(L, v, vl);
            if (!all) return 1;
            lua_rawseti(L, -2, ++found);
        }
    }
    if (!all) lua_pushnil(L);
    return 1;
}

static int invite_header(lua_State *L) { return invite_headers_impl(L, 0); }
static int invite_headers(lua_State *L) { return invite_headers_impl(L, 1); }

static int invite_index(lua_State *L) {
    invite_ud *u = luaL_checkudata(L, 1, INVITE_META);
    if (lua_type(L, 2) != LUA_TSTRING) {
        lua_pushnil(L);
        return 1;
    }
    size_t n;
    const char *k = lua_tolstring(L, 2, &n);
    for (int i = 0; i < F_COUNT; i++) {
        if (strlen(FIELD_NAMES[i]) == n && memcmp(FIELD_NAMES[i], k, n) == 0) {
            if (u->field_len[i] < 0) lua_pushnil(L);
            else lua_pushlstring(L, u->data + u->field_off[i], (size_t)u->field_len[i]);
            return 1;
        }
    }
    if (n == 6 && memcmp(k, "header", 6) == 0) lua_pushcfunction(L, invite_header);
    else if (n == 7 && memcmp(k, "headers", 7) == 0) lua_pushcfunction(L, invite_headers);
    else lua_pushnil(L);
    return 1;
}

static int invite_newindex(lua_State *L) {
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : luaL_typename(L, 2);
    return luaL_error(L, "the INVITE view is read-only (cannot set '%s')", k);
}

static int invite_tostring(lua_State *L) {
    invite_ud *u = luaL_checkudata(L, 1, INVITE_META);
    if (u->field_len[F_URI] >= 0)
        lua_pushfstring(L, "INVITE %s", lua_pushlstring(L, u->data + u->field_off[F_URI], (size_t)u->field_len[F_URI]));
    else
        lua_pushliteral(L, "INVITE");
    return 1;
}

/// pairs(invite): the fields that are set.
static int invite_next(lua_State *L) {
    invite_ud *u = luaL_checkudata(L, 1, INVITE_META);
    int start = 0;
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *k = lua_tostring(L, 2);
        for (int i = 0; i < F_COUNT; i++)
            if (strcmp(FIELD_NAMES[i], k) == 0) start = i + 1;
    }
    for (int i = start; i < F_COUNT; i++) {
        if (u->field_len[i] >= 0) {
            lua_pushstring(L, FIELD_NAMES[i]);
            lua_pushlstring(L, u->data + u->field_off[i], (size_t)u->field_len[i]);
            return 2;
        }
    }
    lua_pushnil(L);
    return 1;
}

static int invite_pairs(lua_State *L) {
    luaL_checkudata(L, 1, INVITE_META);
    lua_pushcfunction(L, invite_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static void push_str_or_nil(lua_State *L, parley_str s) {
    if (s.ptr) lua_pushlstring(L, s.ptr, s.len);
    else lua_pushnil(L);
}

// MARK: - Sandboxed require

static int valid_module_name(const char *s, size_t n) {
    if (n == 0 || n > 200 || s[0] == '.' || s[n - 1] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                 (c == '.' && s[i + 1] != '.');
        if (!ok) return 0;
    }
    return 1;
}

static int is_bytecode(const char *src, size_t n) { return n > 0 && src[0] == LUA_SIGNATURE[0]; }

/// Loads a text chunk; raises a positioned error (syntax errors, bytecode refused).
static void load_text(lua_State *L, const char *display, size_t dlen, const char *src, size_t n) {
    if (is_bytecode(src, n))
        luaL_error(L, "%s:1: precompiled (bytecode) chunks are not allowed; rules must be Lua source text",
                   lua_pushlstring(L, display, dlen));
    lua_pushliteral(L, "@");
    lua_pushlstring(L, display, dlen);
    lua_concat(L, 2);
    const char *chunkname = lua_tostring(L, -1);
    int st = luaL_loadbufferx(L, src, n, chunkname, "t");
    if (st != LUA_OK) lua_error(L);
    lua_remove(L, -2);
}

static int l_require(lua_State *L) {
    parley_state *S = state_of(L);
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    if (!valid_module_name(name, n))
        return luaL_error(L, "require \"%s\": rules may require only modules of their own rule directory, "
                             "by a dotted name such as \"lib.hours\" (no paths)", name);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_loaded);
    int loaded = lua_gettop(L);
    lua_pushvalue(L, 1);
    lua_rawget(L, loaded);
    if (lua_touserdata(L, -1) == (void *)&LOADING_SENTINEL)
        return luaL_error(L, "require \"%s\": circular require", name);
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_compiled);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) == LUA_TFUNCTION) {
        lua_pushvalue(L, 1);
        lua_pushlightuserdata(L, (void *)&LOADING_SENTINEL);
        lua_rawset(L, loaded);
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        goto done;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_sources);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    if (lua_isnil(L, -1)) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 0; i < n; i++) luaL_addchar(&b, name[i] == '.' ? '/' : name[i]);
        luaL_addstring(&b, ".lua");
        luaL_pushresult(&b);
        return luaL_error(L, "require \"%s\": module not found in the rule directory (no file %s)", name,
                          lua_tostring(L, -1));
    }
    size_t srclen;
    const char *src = lua_tolstring(L, -1, &srclen);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_displays);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    size_t dlen;
    const char *display = lua_tolstring(L, -1, &dlen);
    lua_pushvalue(L, 1);
    lua_pushlightuserdata(L, (void *)&LOADING_SENTINEL);
    lua_rawset(L, loaded);
    load_text(L, display, dlen, src, srclen);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
done:
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, loaded);
    return 1;
}

// MARK: - Bounded pattern functions

/// Worst-case backtracking estimate of a Lua pattern on a subject of n bytes: each quantified
/// item (`*`, `+`, `-`) can be tried at every split of the subject, so k of them cost about
/// C(n + k, k) steps, times n start positions when the pattern is not anchored.
static double pattern_cost(const char *p, size_t m, size_t n, int can_anchor) {
    int anchored = can_anchor && m > 0 && p[0] == '^';
    int k = 0;
    size_t i = anchored ? 1 : 0;
    while (i < m) {
        char c = p[i];
        size_t item_end;
        if (c == '%') {
            if (i + 1 < m && (p[i + 1] == 'b')) { k++; i += 4; continue; }
            if (i + 1 < m && (p[i + 1] == 'f')) {
                i += 2;
                if (i < m && p[i] == '[') {
                    i++;
                    if (i < m && p[i] == '^') i++;
                    if (i < m && p[i] == ']') i++;
                    while (i < m && p[i] != ']') i += (p[i] == '%') ? 2 : 1;
                    i++;
                }
                continue;
            }
            item_end = i + 2;
        } else if (c == '[') {
            size_t j = i + 1;
            if (j < m && p[j] == '^') j++;
            if (j < m && p[j] == ']') j++;
            while (j < m && p[j] != ']') j += (p[j] == '%') ? 2 : 1;
            item_end = j + 1;
        } else if (c == '(' || c == ')') {
            i++;
            continue;
        } else {
            item_end = i + 1;
        }
        if (item_end < m && (p[item_end] == '*' || p[item_end] == '+' || p[item_end] == '-')) {
            k++;
            item_end++;
        } else if (item_end < m && p[item_end] == '?') {
            item_end++;
        }
        i = item_end;
    }
    double cost = 1;
    for (int j = 1; j <= k; j++) cost = cost * (double)(n + j) / (double)j;
    if (!anchored) cost *= (double)(n + 1);
    return cost * (double)(m + 1);
}

static int bounded_pattern(lua_State *L, int can_anchor, int plain_arg) {
    parley_state *S = state_of(L);
    size_t n, m;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *p = luaL_checklstring(L, 2, &m);
    (void)s;
    const char *fname = lua_tostring(L, lua_upvalueindex(2));
    int plain = plain_arg > 0 && lua_toboolean(L, plain_arg);
    if (S->limits.pattern_subject_bytes > 0 && (int64_t)n > S->limits.pattern_subject_bytes)
        return luaL_error(L, "%s: subject of %I bytes is longer than the pattern limit of %I bytes", fname,
                          (lua_Integer)n, (lua_Integer)S->limits.pattern_subject_bytes);
    if (!plain && S->limits.pattern_cost > 0) {
        double cost = pattern_cost(p, m, n, can_anchor);
        if (cost > S->limits.pattern_cost)
            return luaL_error(L, "%s: pattern '%s' is too costly for a subject of %I bytes (worst case about %f steps, "
                                 "limit %f); use fewer repetitions or a shorter subject",
                              fname, p, (lua_Integer)n, (lua_Number)cost, (lua_Number)S->limits.pattern_cost);
    }
    int nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L);
}

static int l_find(lua_State *L) { return bounded_pattern(L, 1, 4); }
static int l_match(lua_State *L) { return bounded_pattern(L, 1, 0); }
static int l_gmatch(lua_State *L) { return bounded_pattern(L, 0, 0); }
static int l_gsub(lua_State *L) { return bounded_pattern(L, 1, 0); }

static void wrap_pattern_function(lua_State *L, int string_table, const char *name, lua_CFunction f) {
    lua_getfield(L, string_table, name);
    lua_pushfstring(L, "string.%s", name);
    lua_pushcclosure(L, f, 2);
    lua_setfield(L, string_table, name);
}

// MARK: - log and parley

/// Pushes the function's arguments as one string, joined by spaces (log.*, trace).
static void push_joined(lua_State *L) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

static int l_log(lua_State *L) {
    parley_state *S = state_of(L);
    int level = (int)lua_tointeger(L, lua_upvalueindex(1));
    push_joined(L);
    char where[LUA_IDSIZE + 24];
    where[0] = 0;
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar))
        snprintf(where, sizeof where, "%s:%d", ar.short_src, ar.currentline);
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    if (S->config.callbacks.log) S->config.callbacks.log(S->config.callbacks.ctx, level, where, strlen(where), msg, len);
    return 0;
}

/// trace(...): the arguments joined by spaces, cut to PARLEY_TRACE_LEN bytes (on a UTF-8
/// boundary), added to the current hook call's notes while there are fewer than PARLEY_TRACE_MAX.
static int l_trace(lua_State *L) {
    parley_state *S = state_of(L);
    if (S->trace_count >= PARLEY_TRACE_MAX) return 0;
    push_joined(L);
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    if (len > PARLEY_TRACE_LEN) {
        len = PARLEY_TRACE_LEN;
        while (len > 0 && (((unsigned char)msg[len]) & 0xC0) == 0x80) len--;  // not inside a character
    }
    memcpy(S->trace[S->trace_count], msg, len);
    S->trace[S->trace_count][len] = 0;
    S->trace_len[S->trace_count] = len;
    S->trace_count++;
    return 0;
}

/// last_trace() (tests): what the last hook call traced, as an array of strings.
static int l_last_trace(lua_State *L) {
    parley_state *S = state_of(L);
    lua_createtable(L, S->trace_count, 0);
    for (int i = 0; i < S->trace_count; i++) {
        lua_pushlstring(L, S->trace[i], S->trace_len[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/// A hook as tests call it: the trace starts empty, then the rule's function runs with the
/// same arguments and its results come back.
static int l_traced_hook(lua_State *L) {
    parley_state *S = state_of(L);
    S->trace_count = 0;
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

int parley_trace_count(parley_state *S) { return S->trace_count; }

const char *parley_trace_note(parley_state *S, int i, size_t *len) {
    if (i < 0 || i >= S->trace_count) { *len = 0; return ""; }
    *len = S->trace_len[i];
    return S->trace[i];
}

/// Now, for agents' idle_ms: the hook's now when the engine set one, else the clock.
static int64_t agent_now(parley_state *S) {
    if (S->hook_now_set) return S->hook_now;
    if (S->config.test_mode || !S->config.callbacks.now_ms) return S->test_now;
    return S->config.callbacks.now_ms(S->config.callbacks.ctx);
}

void parley_set_hook_now(parley_state *S, int64_t now_ms, int set) {
    S->hook_now = now_ms;
    S->hook_now_set = set;
}

static int l_now_ms(lua_State *L) {
    parley_state *S = state_of(L);
    if (S->config.test_mode || !S->config.callbacks.now_ms) {
        lua_pushinteger(L, (lua_Integer)S->test_now);
    } else {
        lua_pushinteger(L, (lua_Integer)S->config.callbacks.now_ms(S->config.callbacks.ctx));
    }
    return 1;
}

static int l_set_now_ms(lua_State *L) {
    parley_state *S = state_of(L);
    S->test_now = (int64_t)luaL_checkinteger(L, 1);
    return 0;
}

static int l_sip_parse(lua_State *L) {
    parley_state *S = state_of(L);
    size_t n;
    const char *text = luaL_checklstring(L, 1, &n);
    if (!S->config.callbacks.parse_sip) return luaL_error(L, "sip.parse is not available");
    char *blob = NULL, *err = NULL;
    size_t blen = 0;
    int st = S->config.callbacks.parse_sip(S->config.callbacks.ctx, text, n, &blob, &blen, &err);
    if (st != 0) {
        lua_pushstring(L, err ? err : "cannot parse SIP message");
        free(err);
        free(blob);
        luaL_where(L, 1);
        lua_pushliteral(L, "sip.parse: ");
        lua_pushvalue(L, -3);
        lua_concat(L, 3);
        return lua_error(L);
    }
    // Copy into Lua-owned memory; free the host buffer even if that raises (memory cap).
    lua_pushlstring(L, blob ? blob : "", blen);
    free(blob);
    size_t size;
    const char *b = lua_tolstring(L, -1, &size);
    push_invite(L, b, size);
    return 1;
}

static int l_make_invite(lua_State *L) {
    size_t n;
    const char *blob = luaL_checklstring(L, 1, &n);
    push_invite(L, blob, n);
    return 1;
}

// MARK: - Opening a state

static int op_open(lua_State *L) {
    parley_state *S = lua_touserdata(L, 1);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 1);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 1);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_settop(L, 1);

    lua_pushglobaltable(L);
    int G = lua_gettop(L);
    static const char *const removed[] = {"load", "loadfile", "dofile", "collectgarbage", "warn", "require", NULL};
    for (int i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, G, removed[i]);
    }
    lua_getfield(L, G, "string");
    int str = lua_gettop(L);
    lua_pushnil(L);
    lua_setfield(L, str, "dump");
    wrap_pattern_function(L, str, "find", l_find);
    wrap_pattern_function(L, str, "match", l_match);
    wrap_pattern_function(L, str, "gmatch", l_gmatch);
    wrap_pattern_function(L, str, "gsub", l_gsub);
    lua_settop(L, G);

    lua_pushcfunction(L, l_require);
    lua_setfield(L, G, "require");

    // The raw functions see a lazy candidate list as the array it stands for (push_agents).
    static const char *const raw[] = {"next", "rawget", "rawlen", "rawset", "getmetatable", "setmetatable", NULL};
    for (int i = 0; raw[i]; i++) {
        lua_getfield(L, G, raw[i]);
        lua_pushcclosure(L, fill_then_call, 1);
        lua_setfield(L, G, raw[i]);
    }

    // log.debug/info/warn/error; print goes to log.info.
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    lua_createtable(L, 0, 4);
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, l_log, 1);
        lua_setfield(L, -2, levels[i]);
    }
    lua_setfield(L, G, "log");
    lua_pushcfunction(L, l_trace);
    lua_setfield(L, G, "trace");
    if (S->config.test_mode) {
        lua_pushcfunction(L, l_last_trace);
        lua_setfield(L, G, "last_trace");
    }
    lua_pushinteger(L, PARLEY_LOG_INFO);
    lua_pushcclosure(L, l_log, 1);
    lua_setfield(L, G, "print");

    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, l_now_ms);
    lua_setfield(L, -2, "now_ms");
    lua_pushnumber(L, 1.1);  // 1.1: trace(...)
    lua_setfield(L, -2, "api_version");
    if (S->config.test_mode) {
        lua_pushcfunction(L, l_set_now_ms);
        lua_setfield(L, -2, "set_now_ms");
    }
    lua_setfield(L, G, "parley");

    if (S->config.test_mode) {
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, l_sip_parse);
        lua_setfield(L, -2, "parse");
        lua_setfield(L, G, "sip");
    }

    // The INVITE view's metatable.
    luaL_newmetatable(L, INVITE_META);
    lua_pushcfunction(L, invite_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, invite_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, invite_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, invite_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "read-only");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    lua_newtable(L);
    S->ref_sources = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    S->ref_displays = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    S->ref_loaded = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    S->ref_compiled = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    S->ref_agents = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    S->ref_agent_data = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

parley_state *parley_open(const parley_config *config, char **error) {
    parley_state *S = calloc(1, sizeof *S);
    if (!S) return NULL;
    S->config = *config;
    S->limits = config->limits;
    lua_State *L = lua_newstate(l_alloc, S);
    if (!L) {
        free(S);
        if (error) *error = strdup("cannot create a Lua state");
        return NULL;
    }
    S->L = L;
    *(parley_state **)lua_getextraspace(L) = S;
    lua_atpanic(L, l_panic);
    if (protect(S, op_open, S, 0) != PARLEY_OK) {
        if (error) *error = strdup(S->error ? S->error : "cannot open the Lua libraries");
        parley_close(S);
        return NULL;
    }
    lua_gc(L, LUA_GCGEN, 0, 0);
    return S;
}

void parley_close(parley_state *S) {
    if (!S) return;
    if (S->L) lua_close(S->L);
    free(S->error);
    free(S);
}

const char *parley_last_error(parley_state *S, size_t *len) {
    if (len) *len = S->error ? S->error_len : 0;
    return S->error ? S->error : "";
}

int64_t parley_memory_used(parley_state *S) { return (int64_t)S->used; }

int64_t parley_collect_garbage(parley_state *S) {
    lua_gc(S->L, LUA_GCCOLLECT);
    return (int64_t)S->used;
}

void parley_set_limits(parley_state *S, const parley_limits *limits) { S->limits = *limits; }

void parley_free(void *p) { free(p); }

// MARK: - Modules and chunks

typedef struct {
    parley_str a, b, c;
    const char *name;
    int int_out;
    char *source_out;
    size_t source_cap;
} op_args;

static int op_add_module(lua_State *L) {
    parley_state *S = state_of(L);
    op_args *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_sources);
    lua_pushlstring(L, a->a.ptr, a->a.len);
    lua_pushlstring(L, a->c.ptr, a->c.len);
    lua_rawset(L, -3);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_displays);
    lua_pushlstring(L, a->a.ptr, a->a.len);
    lua_pushlstring(L, a->b.ptr, a->b.len);
    lua_rawset(L, -3);
    return 0;
}

int parley_add_module(parley_state *S, parley_str module, parley_str display, parley_str source) {
    op_args a = {.a = module, .b = display, .c = source};
    return protect(S, op_add_module, &a, 0);
}

static int op_compile(lua_State *L) {
    op_args *a = lua_touserdata(L, 1);
    load_text(L, a->a.ptr, a->a.len, a->b.ptr, a->b.len);
    return 0;
}

int parley_compile(parley_state *S, parley_str display, parley_str source) {
    op_args a = {.a = display, .b = source};
    return protect(S, op_compile, &a, 1);
}

static int op_compile_module(lua_State *L) {
    parley_state *S = state_of(L);
    op_args *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_compiled);
    lua_pushlstring(L, a->c.ptr, a->c.len);
    load_text(L, a->a.ptr, a->a.len, a->b.ptr, a->b.len);
    lua_rawset(L, -3);
    return 0;
}

int parley_compile_module(parley_state *S, parley_str module, parley_str display, parley_str source) {
    op_args a = {.a = display, .b = source, .c = module};
    return protect(S, op_compile_module, &a, 1);
}

static int op_require(lua_State *L) {
    op_args *a = lua_touserdata(L, 1);
    lua_pushcfunction(L, l_require);
    lua_pushlstring(L, a->a.ptr, a->a.len);
    lua_call(L, 1, 0);
    return 0;
}

int parley_require(parley_state *S, parley_str module) {
    op_args a = {.a = module};
    return protect(S, op_require, &a, 1);
}

static int op_run_chunk(lua_State *L) {
    op_args *a = lua_touserdata(L, 1);
    load_text(L, a->a.ptr, a->a.len, a->b.ptr, a->b.len);
    // Test preludes get the internal helpers as arguments.
    lua_pushcfunction(L, l_readonly);
    lua_pushcfunction(L, l_make_invite);
    lua_call(L, 2, 0);
    return 0;
}

int parley_run_chunk(parley_state *S, parley_str display, parley_str source) {
    op_args a = {.a = display, .b = source};
    return protect(S, op_run_chunk, &a, 1);
}

static int op_global_type(lua_State *L) {
    op_args *a = lua_touserdata(L, 1);
    lua_pushglobaltable(L);
    lua_pushstring(L, a->name);
    a->int_out = lua_rawget(L, -2);
    return 0;
}

int parley_global_type(parley_state *S, const char *name) {
    op_args a = {.name = name, .int_out = -1};
    if (protect(S, op_global_type, &a, 0) != PARLEY_OK) return -1;
    return a.int_out;
}

static int op_function_position(lua_State *L) {
    op_args *a = lua_touserdata(L, 1);
    lua_pushglobaltable(L);
    lua_pushstring(L, a->name);
    if (lua_rawget(L, -2) != LUA_TFUNCTION) return 0;
    lua_Debug ar;
    if (lua_getinfo(L, ">S", &ar)) {
        snprintf(a->source_out, a->source_cap, "%s", ar.short_src);
        a->int_out = ar.linedefined;
    }
    return 0;
}

int parley_function_position(parley_state *S, const char *name, char *source, size_t source_cap, int *line) {
    op_args a = {.name = name, .int_out = 0, .source_out = source, .source_cap = source_cap};
    if (source_cap) source[0] = 0;
    int st = protect(S, op_function_position, &a, 0);
    *line = a.int_out;
    return st;
}

// MARK: - Agents

typedef struct {
    int32_t slot;
    const parley_agent *agent;
} agent_args;

static int is_idle_key(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TSTRING) return 0;
    size_t n;
    const char *k = lua_tolstring(L, idx, &n);
    return n == 7 && memcmp(k, "idle_ms", 7) == 0;
}

/// __index of an agent's data table: `idle_ms`, from when the agent became idle (upvalue 1, an
/// integer, or nil when it is not idle) and now. Computed when read, so a call's candidates are
/// handed over without writing into each of them (old tables written to on every call cost
/// the generational collector a traversal each).
static int agent_idle(lua_State *L) {
    if (!is_idle_key(L, 2)) return 0;
    if (lua_isnil(L, lua_upvalueindex(1))) {
        lua_pushinteger(L, 0);
        return 1;
    }
    int64_t since = (int64_t)lua_tointeger(L, lua_upvalueindex(1));
    int64_t now = agent_now(state_of(L));
    lua_pushinteger(L, (lua_Integer)(now > since ? now - since : 0));
    return 1;
}

/// pairs() over an agent: its data, then idle_ms (which the data table computes).
static int agent_next(lua_State *L) {
    // upvalue: data table. Arguments: proxy, key.
    lua_settop(L, 2);
    if (is_idle_key(L, 2)) {
        lua_pushnil(L);
        return 1;
    }
    if (lua_next(L, lua_upvalueindex(1))) return 2;
    lua_pushliteral(L, "idle_ms");
    lua_getfield(L, lua_upvalueindex(1), "idle_ms");
    return 2;
}

static int agent_pairs(lua_State *L) { return pairs_with(L, agent_next); }

/// The fields of an agent's data table that its calls change (idle_ms is computed on reading).
static void set_agent_call_fields(lua_State *L, int data, const parley_agent *ag) {
    push_str_or_nil(L, ag->state);
    lua_setfield(L, data, "state");
    lua_pushinteger(L, ag->calls_handled);
    lua_setfield(L, data, "calls_handled");
    lua_pushinteger(L, ag->talk_ms);
    lua_setfield(L, data, "talk_ms");
}

static int op_agent_put(lua_State *L) {
    parley_state *S = state_of(L);
    agent_args *a = lua_touserdata(L, 1);
    const parley_agent *ag = a->agent;
    lua_createtable(L, 0, 9);
    int data = lua_gettop(L);
    push_str_or_nil(L, ag->id);
    lua_setfield(L, data, "id");
    lua_createtable(L, 0, (int)ag->skill_count);
    for (size_t i = 0; i < ag->skill_count; i++) {
        lua_pushlstring(L, ag->skills[i].ptr, ag->skills[i].len);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    make_readonly(L);
    lua_setfield(L, data, "skills");
    set_agent_call_fields(L, data, ag);
    lua_createtable(L, 0, 1);
    if (ag->has_idle_since) lua_pushinteger(L, (lua_Integer)ag->idle_since); else lua_pushnil(L);
    lua_pushcclosure(L, agent_idle, 1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, data);
    push_str_or_nil(L, ag->contact);
    lua_setfield(L, data, "contact");
    lua_createtable(L, 0, (int)ag->attr_count);
    for (size_t i = 0; i < ag->attr_count; i++) {
        const parley_attr *at = &ag->attrs[i];
        lua_pushlstring(L, at->key.ptr, at->key.len);
        switch (at->kind) {
        case 1: {
            lua_Number x = at->number;
            if (x == (lua_Number)(lua_Integer)x) lua_pushinteger(L, (lua_Integer)x);
            else lua_pushnumber(L, x);
            break;
        }
        case 2: lua_pushboolean(L, at->boolean); break;
        default: lua_pushlstring(L, at->string.ptr, at->string.len); break;
        }
        lua_rawset(L, -3);
    }
    make_readonly(L);
    lua_setfield(L, data, "attrs");
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_agent_data);
    lua_pushvalue(L, data);
    lua_rawseti(L, -2, a->slot);
    lua_pop(L, 1);
    lua_pushvalue(L, data);
    make_readonly(L);
    lua_getmetatable(L, -1);
    lua_pushcfunction(L, agent_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_agents);
    lua_insert(L, -2);
    lua_rawseti(L, -2, a->slot);
    return 0;
}

int parley_agent_put(parley_state *S, int32_t slot, const parley_agent *agent) {
    agent_args a = {slot, agent};
    return protect(S, op_agent_put, &a, 0);
}

typedef struct {
    int32_t slot;
    const parley_agent *agent;
    int found;
} agent_update_args;

/// The fields of a resident agent that its calls change, set in its data table (the proxy a
/// rule holds reads through to it); idle_since is the idle_ms closure's upvalue.
static int op_agent_update(lua_State *L) {
    parley_state *S = state_of(L);
    agent_update_args *a = lua_touserdata(L, 1);
    const parley_agent *ag = a->agent;
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_agent_data);
    if (lua_rawgeti(L, -1, a->slot) != LUA_TTABLE || !lua_getmetatable(L, -1)) {
        a->found = 0;
        return 0;
    }
    int meta = lua_gettop(L), data = meta - 1;
    set_agent_call_fields(L, data, ag);
    if (lua_getfield(L, meta, "__index") != LUA_TFUNCTION) {
        a->found = 0;
        return 0;
    }
    if (ag->has_idle_since) lua_pushinteger(L, (lua_Integer)ag->idle_since); else lua_pushnil(L);
    a->found = lua_setupvalue(L, -2, 1) != NULL;
    return 0;
}

int parley_agent_update(parley_state *S, int32_t slot, const parley_agent *agent, int *found) {
    agent_update_args a = {slot, agent, 0};
    int st = protect(S, op_agent_update, &a, 0);
    *found = a.found;
    return st;
}

static int op_agent_remove(lua_State *L) {
    parley_state *S = state_of(L);
    agent_args *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_agents);
    lua_pushnil(L);
    lua_rawseti(L, -2, a->slot);
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_agent_data);
    lua_pushnil(L);
    lua_rawseti(L, -2, a->slot);
    return 0;
}

int parley_agent_remove(parley_state *S, int32_t slot) {
    agent_args a = {slot, NULL};
    return protect(S, op_agent_remove, &a, 0);
}

// MARK: - Candidate lists
//
// select_agent and order_registrations get every candidate agent, and a contact center may have
// thousands. Building a table of n entries per call cost each call O(n) table writes and garbage,
// while the usual rule reads one or two entries (the longest idle agent is the first). A list
// longer than LAZY_MIN is handed as an empty table whose metatable answers for it: `agents[i]`
// and `#agents` read the slots copied here, so ipairs, the length operator and indexing cost
// only what is read. The first write, and anything that would see the raw table (pairs, next,
// rawget, rawlen, rawset, getmetatable, setmetatable, whose global functions are wrapped in
// op_open), first fills the table with every entry and removes the metatable: from then on it
// is an ordinary array. A rule cannot tell the two apart.

#define LAZY_MIN 16

static const char LAZY_KEY = 0;  // light-userdata key, in a lazy list's metatable, of its slots

typedef struct {
    lua_Integer count;
    int32_t slots[];
} lazy_list;

/// The slots of the lazy list at `idx`, or NULL when it is not one (the stack is unchanged).
static lazy_list *lazy_of(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return NULL;
    lua_rawgetp(L, -1, &LAZY_KEY);
    lazy_list *d = lua_type(L, -1) == LUA_TUSERDATA ? lua_touserdata(L, -1) : NULL;
    lua_pop(L, 2);  // the metatable, held by the table at idx, keeps d alive
    return d;
}

/// Pushes entry i (1-based) of a lazy list: the resident agent at its slot.
static void lazy_push(lua_State *L, const lazy_list *d, lua_Integer i) {
    if (i < 1 || i > d->count) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, state_of(L)->ref_agents);
    lua_rawgeti(L, -1, d->slots[i - 1]);
    lua_remove(L, -2);
}

/// Turns the lazy list at `idx` (if it is one) into the ordinary array it stands for.
static void lazy_fill(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lazy_list *d = lazy_of(L, idx);
    if (!d) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, state_of(L)->ref_agents);
    int proxies = lua_gettop(L);
    for (lua_Integer i = 1; i <= d->count; i++) {
        if (lua_rawgeti(L, idx, i) == LUA_TNIL) {
            lua_rawgeti(L, proxies, d->slots[i - 1]);
            lua_rawseti(L, idx, i);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setmetatable(L, idx);
}

static int lazy_index(lua_State *L) {
    lazy_list *d = lazy_of(L, 1);
    int isnum = 0;
    lua_Integer i = lua_tointegerx(L, 2, &isnum);
    if (!d || !isnum || lua_type(L, 2) != LUA_TNUMBER) {
        lua_pushnil(L);
        return 1;
    }
    lazy_push(L, d, i);
    return 1;
}

static int lazy_newindex(lua_State *L) {
    lua_settop(L, 3);
    lazy_fill(L, 1);
    lua_rawset(L, 1);
    return 0;
}

static int lazy_len(lua_State *L) {
    lazy_list *d = lazy_of(L, 1);
    lua_pushinteger(L, d ? d->count : 0);
    return 1;
}

/// next() as Lua's own, for the pairs of a list that has been filled.
static int raw_next(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1)) return 2;
    lua_pushnil(L);
    return 1;
}

static int lazy_pairs(lua_State *L) {
    lazy_fill(L, 1);
    lua_pushcfunction(L, raw_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/// A wrapped global (next, rawget, rawlen, rawset, getmetatable, setmetatable): fills a lazy
/// list in argument 1, then calls the original (upvalue 1) with the same arguments.
static int fill_then_call(lua_State *L) {
    int n = lua_gettop(L);
    if (n >= 1) lazy_fill(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/// Pushes the candidate agents at `slots`, in that order: an array of the resident read-only
/// agents (their idle_ms is computed when read), lazy when there are more than LAZY_MIN.
static void push_agents(lua_State *L, const int32_t *slots, size_t count) {
    parley_state *S = state_of(L);
    if (count > LAZY_MIN) {
        lua_createtable(L, 0, 0);  // the list
        lua_createtable(L, 0, 5);  // its metatable
        lazy_list *d = lua_newuserdatauv(L, sizeof(lazy_list) + count * sizeof(int32_t), 0);
        d->count = (lua_Integer)count;
        memcpy(d->slots, slots, count * sizeof(int32_t));
        lua_rawsetp(L, -2, &LAZY_KEY);
        static const luaL_Reg meta[] = {
            {"__index", lazy_index}, {"__newindex", lazy_newindex}, {"__len", lazy_len}, {"__pairs", lazy_pairs}, {NULL, NULL}};
        luaL_setfuncs(L, meta, 0);
        lua_setmetatable(L, -2);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->ref_agents);
    int proxies = lua_gettop(L);
    lua_createtable(L, (int)count, 0);
    lua_Integer n = 0;
    for (size_t i = 0; i < count; i++) {
        if (lua_rawgeti(L, proxies, slots[i]) == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        lua_rawseti(L, -2, ++n);
    }
    lua_replace(L, proxies);
    lua_settop(L, proxies);
}

static void push_agent(lua_State *L, int32_t slot) {
    push_agents(L, &slot, 1);
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
}

static void push_call(lua_State *L, const parley_call *c) {
    lua_createtable(L, 0, 6);
    push_str_or_nil(L, c->id);
    lua_setfield(L, -2, "id");
    push_str_or_nil(L, c->type);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, c->priority);
    lua_setfield(L, -2, "priority");
    lua_pushinteger(L, c->waited_ms);
    lua_setfield(L, -2, "waited_ms");
    lua_createtable(L, (int)c->attempt_count, 0);
    for (size_t i = 0; i < c->attempt_count; i++) {
        lua_pushlstring(L, c->attempts[i].ptr, c->attempts[i].len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "attempts");
    if (c->invite.ptr) {
        push_invite(L, c->invite.ptr, c->invite.len);
        lua_setfield(L, -2, "invite");
    }
}

static void push_address(lua_State *L, const parley_address *a) {
    lua_createtable(L, 0, 4);
    push_str_or_nil(L, a->aor);
    lua_setfield(L, -2, "aor");
    push_str_or_nil(L, a->skill);
    lua_setfield(L, -2, "skill");
    push_str_or_nil(L, a->kind);
    lua_setfield(L, -2, "kind");
    push_str_or_nil(L, a->name);
    lua_setfield(L, -2, "name");
}

// MARK: - Hook calls

typedef struct {
    const char *hook;
    int defined;
    // arguments
    parley_str invite;
    const parley_call *call;
    const parley_address *address;
    const int32_t *slots;
    size_t count;
    int32_t slot;
    // results
    parley_classify_result *classify;
    parley_string_result *string;
    parley_order_result *order;
} hook_args;

/// Pushes the hook function, or returns 0 when the global is nil. Raises for other types.
static int push_hook(lua_State *L, hook_args *a) {
    parley_state *S = state_of(L);
    S->trace_count = 0;
    lua_pushglobaltable(L);
    int t = lua_getfield(L, -1, a->hook);
    lua_remove(L, -2);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TFUNCTION) {
        S->result_error = 1;
        luaL_error(L, "%s is a %s, not a function", a->hook, luaL_typename(L, -1));
    }
    a->defined = 1;
    return 1;
}

/// Raises a result error positioned at the hook's definition.
static int result_error(lua_State *L, hook_args *a, const char *what) {
    parley_state *S = state_of(L);
    S->result_error = 1;
    lua_Debug ar;
    lua_pushglobaltable(L);
    lua_getfield(L, -1, a->hook);
    if (lua_type(L, -1) == LUA_TFUNCTION && lua_getinfo(L, ">S", &ar))
        return luaL_error(L, "%s:%d: %s %s", ar.short_src, ar.linedefined, a->hook, what);
    return luaL_error(L, "%s %s", a->hook, what);
}

static char *copy_lua_string(lua_State *L, int idx, size_t *len) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    char *p = malloc(n + 1);
    if (!p) luaL_error(L, "not enough memory");
    memcpy(p, s, n);
    p[n] = 0;
    *len = n;
    return p;
}

static int op_classify(lua_State *L) {
    hook_args *a = lua_touserdata(L, 1);
    if (!push_hook(L, a)) return 0;
    push_invite(L, a->invite.ptr, a->invite.len);
    lua_call(L, 1, 2);
    if (lua_type(L, -2) != LUA_TSTRING)
        return result_error(L, a, lua_pushfstring(L, "returned a %s, expected a call type (a string)", luaL_typename(L, -2)));
    if (lua_rawlen(L, -2) == 0) return result_error(L, a, "returned an empty call type");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TTABLE)
            return result_error(L, a, lua_pushfstring(L, "returned a %s as its second value, expected a table like {priority = 1}",
                                                      luaL_typename(L, -1)));
        int t = lua_getfield(L, -1, "priority");
        if (t != LUA_TNIL) {
            int isnum;
            lua_Integer p = lua_tointegerx(L, -1, &isnum);
            if (!isnum || t != LUA_TNUMBER) return result_error(L, a, "returned a priority that is not an integer");
            a->classify->has_priority = 1;
            a->classify->priority = (int64_t)p;
        }
        lua_pop(L, 1);
    }
    a->classify->type.ptr = copy_lua_string(L, -2, &a->classify->type.len);
    return 0;
}

int parley_classify(parley_state *S, parley_str invite, int *defined, parley_classify_result *out) {
    memset(out, 0, sizeof *out);
    hook_args a = {.hook = "classify", .invite = invite, .classify = out};
    int st = protect(S, op_classify, &a, 1);
    *defined = a.defined;
    if (st != PARLEY_OK) {
        free(out->type.ptr);
        memset(out, 0, sizeof *out);
    }
    return st;
}

/// Reads a string-or-nil result at the top of the stack.
static int string_result(lua_State *L, hook_args *a, const char *expected) {
    if (lua_isnil(L, -1)) {
        a->string->is_nil = 1;
        return 0;
    }
    if (lua_type(L, -1) != LUA_TSTRING) {
        if (lua_type(L, -1) == LUA_TTABLE && strcmp(a->hook, "select_agent") == 0)
            return result_error(L, a, "returned a table; return the agent's id (agent.id) or nil");
        return result_error(L, a, lua_pushfstring(L, "returned a %s, expected %s", luaL_typename(L, -1), expected));
    }
    a->string->ptr = copy_lua_string(L, -1, &a->string->len);
    return 0;
}

static int op_select_agent(lua_State *L) {
    hook_args *a = lua_touserdata(L, 1);
    if (!push_hook(L, a)) return 0;
    push_call(L, a->call);
    push_agents(L, a->slots, a->count);
    lua_call(L, 2, 1);
    return string_result(L, a, "an agent id (a string) or nil");
}

int parley_select_agent(parley_state *S, const parley_call *call, const int32_t *slots, size_t count, int *defined,
                        parley_string_result *out) {
    memset(out, 0, sizeof *out);
    hook_args a = {.hook = "select_agent", .call = call, .slots = slots, .count = count, .string = out};
    int st = protect(S, op_select_agent, &a, 1);
    *defined = a.defined;
    if (st != PARLEY_OK) {
        free(out->ptr);
        memset(out, 0, sizeof *out);
    }
    return st;
}

static int op_handoff(lua_State *L) {
    hook_args *a = lua_touserdata(L, 1);
    if (!push_hook(L, a)) return 0;
    push_call(L, a->call);
    push_agent(L, a->slot);
    lua_call(L, 2, 1);
    if (lua_isnil(L, -1)) return result_error(L, a, "returned nil, expected \"uri\", \"message\" or \"tunnel\"");
    return string_result(L, a, "\"uri\", \"message\" or \"tunnel\"");
}

int parley_handoff_encoding(parley_state *S, const parley_call *call, int32_t slot, int *defined,
                            parley_string_result *out) {
    memset(out, 0, sizeof *out);
    hook_args a = {.hook = "handoff_encoding", .call = call, .slot = slot, .string = out};
    int st = protect(S, op_handoff, &a, 1);
    *defined = a.defined;
    if (st != PARLEY_OK) {
        free(out->ptr);
        memset(out, 0, sizeof *out);
    }
    return st;
}

void parley_free_order(parley_order_result *r) {
    if (!r) return;
    if (r->ids)
        for (size_t i = 0; i < r->count; i++) free(r->ids[i]);
    free(r->ids);
    free(r->id_lens);
    free(r->qs);
    memset(r, 0, sizeof *r);
}

static int op_order(lua_State *L) {
    hook_args *a = lua_touserdata(L, 1);
    if (!push_hook(L, a)) return 0;
    push_address(L, a->address);
    push_agents(L, a->slots, a->count);
    lua_call(L, 2, 1);
    if (lua_type(L, -1) != LUA_TTABLE)
        return result_error(L, a, lua_pushfstring(L, "returned a %s, expected an array of {id = ..., q = ...}", luaL_typename(L, -1)));
    int list = lua_gettop(L);
    lazy_fill(L, list);
    size_t n = (size_t)lua_rawlen(L, list);
    parley_order_result *r = a->order;
    if (n > 0) {
        r->ids = calloc(n, sizeof(char *));
        r->id_lens = calloc(n, sizeof(size_t));
        r->qs = calloc(n, sizeof(double));
        if (!r->ids || !r->id_lens || !r->qs) return luaL_error(L, "not enough memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (lua_rawgeti(L, list, (lua_Integer)i + 1) != LUA_TTABLE)
            return result_error(L, a, lua_pushfstring(L, "returned an entry %d that is a %s, expected {id = ..., q = ...}",
                                                      (int)i + 1, luaL_typename(L, -1)));
        lua_getfield(L, -1, "id");
        if (lua_type(L, -1) != LUA_TSTRING)
            return result_error(L, a, lua_pushfstring(L, "returned entry %d with an id that is a %s, expected a string",
                                                      (int)i + 1, luaL_typename(L, -1)));
        r->ids[i] = copy_lua_string(L, -1, &r->id_lens[i]);
        r->count = i + 1;
        int t = lua_getfield(L, -2, "q");
        if (t != LUA_TNUMBER)
            return result_error(L, a, lua_pushfstring(L, "returned entry %d with a q that is a %s, expected a number from 0 to 1",
                                                      (int)i + 1, luaL_typename(L, -1)));
        double q = (double)lua_tonumber(L, -1);
        if (!(q >= 0 && q <= 1))
            return result_error(L, a, lua_pushfstring(L, "returned entry %d with q = %f, outside 0 to 1", (int)i + 1, (lua_Number)q));
        r->qs[i] = q;
        lua_pop(L, 3);
    }
    return 0;
}

int parley_order_registrations(parley_state *S, const parley_address *address, const int32_t *slots, size_t count,
                               int *defined, parley_order_result *out) {
    memset(out, 0, sizeof *out);
    hook_args a = {.hook = "order_registrations", .address = address, .slots = slots, .count = count,
                   .order = out};
    int st = protect(S, op_order, &a, 1);
    *defined = a.defined;
    if (st != PARLEY_OK) parley_free_order(out);
    return st;
}

// MARK: - Tests

typedef struct {
    parley_str display;
    parley_test_entry *entries;
    size_t count;
    size_t cap;
} list_args;

static int op_list_tests(lua_State *L) {
    list_args *a = lua_touserdata(L, 1);
    lua_pushglobaltable(L);
    int G = lua_gettop(L);
    char want[LUA_IDSIZE];
    {
        // The short_src of "@display" is display itself (possibly shortened the same way).
        lua_Debug probe;
        lua_pushfstring(L, "@%s", lua_pushlstring(L, a->display.ptr, a->display.len));
        const char *chunk = lua_tostring(L, -1);
        luaL_loadbufferx(L, "", 0, chunk, "t");
        lua_getinfo(L, ">S", &probe);
        memcpy(want, probe.short_src, sizeof want);
        lua_settop(L, G);
    }
    lua_pushnil(L);
    while (lua_next(L, G)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION) {
            const char *name = lua_tostring(L, -2);
            if (strncmp(name, "test_", 5) == 0) {
                lua_Debug ar;
                lua_pushvalue(L, -1);
                if (lua_getinfo(L, ">S", &ar) && strcmp(ar.short_src, want) == 0) {
                    if (a->count == a->cap) {
                        size_t nc = a->cap ? a->cap * 2 : 16;
                        parley_test_entry *ne = realloc(a->entries, nc * sizeof *ne);
                        if (!ne) return luaL_error(L, "not enough memory");
                        a->entries = ne;
                        a->cap = nc;
                    }
                    a->entries[a->count].name = strdup(name);
                    a->entries[a->count].line = ar.linedefined;
                    a->count++;
                }
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

static int cmp_entries(const void *x, const void *y) {
    const parley_test_entry *a = x, *b = y;
    if (a->line != b->line) return a->line < b->line ? -1 : 1;
    return strcmp(a->name, b->name);
}

int parley_list_tests(parley_state *S, parley_str display, parley_test_entry **entries, size_t *count) {
    list_args a = {.display = display};
    int st = protect(S, op_list_tests, &a, 0);
    if (st != PARLEY_OK) {
        parley_free_tests(a.entries, a.count);
        *entries = NULL;
        *count = 0;
        return st;
    }
    if (a.count > 1) qsort(a.entries, a.count, sizeof *a.entries, cmp_entries);
    *entries = a.entries;
    *count = a.count;
    return PARLEY_OK;
}

void parley_free_tests(parley_test_entry *entries, size_t count) {
    if (!entries) return;
    for (size_t i = 0; i < count; i++) free(entries[i].name);
    free(entries);
}

static int op_run_test(lua_State *L) {
    op_args *a = lua_touserdata(L, 1);
    lua_pushglobaltable(L);
    if (lua_getfield(L, -1, a->name) != LUA_TFUNCTION) return luaL_error(L, "%s is not a function", a->name);
    lua_call(L, 0, 0);
    return 0;
}

/// In tests, each hook the rules define is wrapped so that its call starts a fresh trace
/// (`last_trace()`); done once per state.
static int op_wrap_hooks(lua_State *L) {
    static const char *const hooks[] = {"classify", "select_agent", "handoff_encoding", "order_registrations"};
    lua_pushglobaltable(L);
    for (int i = 0; i < 4; i++) {
        if (lua_getfield(L, -1, hooks[i]) == LUA_TFUNCTION && lua_tocfunction(L, -1) != l_traced_hook) {
            lua_pushcclosure(L, l_traced_hook, 1);
            lua_setfield(L, -2, hooks[i]);
        } else {
            lua_pop(L, 1);
        }
    }
    return 0;
}

int parley_run_test(parley_state *S, const char *name) {
    if (protect(S, op_wrap_hooks, NULL, 0) != PARLEY_OK) return PARLEY_ERR_RUNTIME;
    op_args a = {.name = name};
    return protect(S, op_run_test, &a, 1);
}
