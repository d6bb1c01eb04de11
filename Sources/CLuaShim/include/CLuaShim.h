// CLuaShim: the only code that touches the Lua C API.
//
// Lua raises errors with longjmp, and a longjmp across Swift frames is undefined behaviour. So
// every operation here that can raise runs inside lua_pcall, started and ended in this file; the
// functions below only ever return a status. Swift callbacks (clock, log, SIP parsing in tests)
// are plain C function pointers that never call back into Lua: the trampolines here collect their
// arguments before the call and push their results after it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An opaque Lua state with Parley's sandbox, limits and rule API installed.
typedef struct parley_state parley_state;

/// A byte string; `ptr == NULL` stands for Lua `nil`.
typedef struct {
    const char *ptr;
    size_t len;
} parley_str;

/// Status codes of every operation.
enum {
    PARLEY_OK = 0,
    PARLEY_ERR_RUNTIME = 1,  ///< a Lua error (message has file:line)
    PARLEY_ERR_SYNTAX = 2,   ///< a chunk does not compile
    PARLEY_ERR_BUDGET = 3,   ///< the instruction budget (or the wall-clock bound) ran out
    PARLEY_ERR_MEMORY = 4,   ///< the memory cap was reached
    PARLEY_ERR_RESULT = 5,   ///< a hook returned a value of the wrong type
};

/// Log levels of `log.*`.
enum { PARLEY_LOG_DEBUG = 0, PARLEY_LOG_INFO = 1, PARLEY_LOG_WARN = 2, PARLEY_LOG_ERROR = 3 };

/// trace(...) (rules API 1.1): notes per hook call, and their length in bytes.
enum { PARLEY_TRACE_MAX = 8, PARLEY_TRACE_LEN = 200 };
/// The notes the current or last hook call traced.
int parley_trace_count(parley_state *S);
const char *parley_trace_note(parley_state *S, int i, size_t *len);

/// Limits armed around every protected call that runs rule code.
typedef struct {
    /// Lua VM instructions per call; 0 means unlimited.
    int64_t instructions;
    /// Bytes a call may allocate beyond what the state held when it started; 0 means unlimited.
    int64_t memory_bytes;
    /// Wall-clock bound per call in nanoseconds; 0 means none (tests use it, hooks need not).
    int64_t wall_ns;
    /// The longest subject string.find/match/gmatch/gsub accept.
    int64_t pattern_subject_bytes;
    /// The largest worst-case backtracking estimate a pattern call may have.
    double pattern_cost;
} parley_limits;

/// Host callbacks. None of them may call into Lua.
typedef struct {
    void *ctx;
    /// Wall-clock milliseconds for `parley.now_ms()` (not used in test mode).
    int64_t (*now_ms)(void *ctx);
    /// One `log.*` record: level, `file:line` of the caller, the message.
    void (*log)(void *ctx, int level, const char *where, size_t where_len, const char *msg, size_t len);
    /// Test mode: parse SIP text into an INVITE blob (malloc'd, freed by the shim) or an error
    /// message (malloc'd). Returns 0 on success.
    int (*parse_sip)(void *ctx, const char *text, size_t len, char **blob, size_t *blob_len, char **error);
} parley_callbacks;

typedef struct {
    parley_limits limits;
    parley_callbacks callbacks;
    /// Installs the test helpers (sip.parse, sip.invite, agent, call, address, assert_eq,
    /// parley.set_now_ms) and makes the clock a settable value starting at 0.
    int test_mode;
    /// The long header name for each compact form letter 'a'..'z' (lower case), or NULL.
    const char *compact_forms[26];
} parley_config;

/// Opens a state. On failure returns NULL and, if `error` is not NULL, a malloc'd message.
parley_state *parley_open(const parley_config *config, char **error);
void parley_close(parley_state *S);

/// The message of the last failed operation (valid until the next operation).
const char *parley_last_error(parley_state *S, size_t *len);
/// Bytes the state holds now.
int64_t parley_memory_used(parley_state *S);
/// A full garbage collection (outside any hook); returns the bytes in use after it.
int64_t parley_collect_garbage(parley_state *S);
/// Replaces the limits for later calls.
void parley_set_limits(parley_state *S, const parley_limits *limits);

/// Registers a module source: `module` is a require name such as "init" or "lib.hours";
/// `display` is the file name used in messages (chunk name).
int parley_add_module(parley_state *S, parley_str module, parley_str display, parley_str source);
/// Compiles a chunk without running it (text only; bytecode is refused).
int parley_compile(parley_state *S, parley_str display, parley_str source);
/// Compiles a module's chunk and keeps it, so that `require` runs it without compiling again.
int parley_compile_module(parley_state *S, parley_str module, parley_str display, parley_str source);
/// `require(module)` under the limits (how init.lua is run).
int parley_require(parley_state *S, parley_str module);
/// Loads and runs a chunk in the global environment under the limits (test files).
int parley_run_chunk(parley_state *S, parley_str display, parley_str source);

/// The Lua type (LUA_T*) of global `name`; -1 when the lookup failed.
int parley_global_type(parley_state *S, const char *name);
/// Where global function `name` is defined: writes its chunk name and first line.
int parley_function_position(parley_state *S, const char *name, char *source, size_t source_cap, int *line);

/// An agent as kept resident in the state (slot is the host's stable index for it).
typedef struct {
    parley_str key;
    int kind;  ///< 0 string, 1 number, 2 boolean
    parley_str string;
    double number;
    int boolean;
} parley_attr;

typedef struct {
    parley_str id;
    const parley_str *skills;
    size_t skill_count;
    parley_str state;
    int64_t calls_handled;
    int64_t talk_ms;
    parley_str contact;
    const parley_attr *attrs;
    size_t attr_count;
    /// When the agent became idle (ms); `idle_ms` is computed from it when a rule reads it, so
    /// nothing is written into the resident agents per call. has_idle_since 0: idle_ms is 0.
    int64_t idle_since;
    int has_idle_since;
} parley_agent;

/// The time the next hooks see as now for agents' idle_ms (set 0: the clock callback).
void parley_set_hook_now(parley_state *S, int64_t now_ms, int set);

int parley_agent_put(parley_state *S, int32_t slot, const parley_agent *agent);
/// Changes what moves with an agent's calls (state, idle_since, calls_handled, talk_ms) in the
/// resident agent at `slot`, in place; the rest of `agent` is not read. *found 0: no agent
/// there (put it instead).
int parley_agent_update(parley_state *S, int32_t slot, const parley_agent *agent, int *found);
int parley_agent_remove(parley_state *S, int32_t slot);

/// The call as hooks see it. `invite` is an INVITE blob (see ParleyRules/InviteView.swift).
typedef struct {
    parley_str id;
    parley_str type;
    int64_t priority;
    int64_t waited_ms;
    const parley_str *attempts;
    size_t attempt_count;
    parley_str invite;
} parley_call;

typedef struct {
    parley_str aor;
    parley_str skill;
    parley_str kind;
    parley_str name;
} parley_address;

/// A string result; `is_nil` when the hook returned nil. `ptr` is malloc'd (free with parley_free).
typedef struct {
    int is_nil;
    char *ptr;
    size_t len;
} parley_string_result;

typedef struct {
    parley_string_result type;
    int has_priority;
    int64_t priority;
} parley_classify_result;

typedef struct {
    size_t count;
    char **ids;       ///< malloc'd, each malloc'd
    size_t *id_lens;  ///< malloc'd
    double *qs;       ///< malloc'd
} parley_order_result;

/// Hook calls. A missing hook gives PARLEY_OK with `*defined = 0`.
int parley_classify(parley_state *S, parley_str invite, int *defined, parley_classify_result *out);
/// Agents are passed by slot (see parley_agent_put); their idle_ms is computed from idle_since
/// at the time set by parley_set_hook_now.
int parley_select_agent(parley_state *S, const parley_call *call, const int32_t *slots, size_t count, int *defined,
                        parley_string_result *out);
int parley_order_registrations(parley_state *S, const parley_address *address, const int32_t *slots, size_t count,
                               int *defined, parley_order_result *out);
int parley_handoff_encoding(parley_state *S, const parley_call *call, int32_t slot, int *defined,
                            parley_string_result *out);

void parley_free(void *p);
void parley_free_order(parley_order_result *r);

/// Test support: the global functions named test_* defined in chunk `display`, in line order.
typedef struct {
    char *name;
    int line;
} parley_test_entry;

int parley_list_tests(parley_state *S, parley_str display, parley_test_entry **entries, size_t *count);
void parley_free_tests(parley_test_entry *entries, size_t count);
/// Calls global function `name` with no arguments under the limits.
int parley_run_test(parley_state *S, const char *name);

#ifdef __cplusplus
}
#endif
