/*
 * verbs.h — the boundary between meshctl's command line (cli.c) and the
 * code that carries out each verb.
 *
 * cli.c parses argv into an mc_opts_t (every flag of every verb, checked for
 * presence and syntax; nothing touches the file system), then calls exactly
 * one mc_verb_*() below. Each verb lives in its own file, config/verb_<verb>.c,
 * owned by whoever implements it: the file holds the glue from the options to
 * the module doing the work (model, compiler, sandbox, CA) and turns the
 * outcome into an exit code. A verb whose module does not exist yet keeps a
 * placeholder there that prints "meshctl: VERB: not implemented yet" and
 * returns MC_EXIT_FAIL; an implementation replaces that placeholder (keep the
 * file name, or delete the placeholder file when the function moves
 * elsewhere: two definitions in the static library are a link error at best
 * and a silently chosen placeholder at worst).
 *
 * Exit codes (DESIGN.md "Binaries"): 0 ok, 1 runtime failure, 2 bad usage or
 * invalid input (input errors print `file:line: message`).
 *
 * Threading: single-threaded; a verb may start threads of its own.
 */
#ifndef MC_VERBS_H
#define MC_VERBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_EXIT_OK 0
#define MC_EXIT_FAIL 1
#define MC_EXIT_USAGE 2

#define MC_DEFAULT_STATE_DIR "/run/zmesh"
#define MC_DEFAULT_TRUST_DOMAIN "cluster.local"
#define MC_DEFAULT_NAMESPACE "default"
#define MC_DEFAULT_TTL_S (24 * 3600)

typedef enum mc_verb {
    MC_VERB_NONE = 0,
    MC_VERB_COMPILE,
    MC_VERB_ANALYZE,
    MC_VERB_CA_INIT,
    MC_VERB_CA_ISSUE,
    MC_VERB_UP,
    MC_VERB_APPLY,
    MC_VERB_DELETE,
    MC_VERB_EXEC,
    MC_VERB_STATUS,
    MC_VERB_LOGS,
    MC_VERB_DOWN,
    MC_VERB_NODE_AGENT, /* internal: started by `up`, not in the usage */
    MC_VERB_COUNT
} mc_verb_t;

/* Everything a verb may be given. Strings point into argv (they live as long
 * as the process's arguments); the arrays are owned and freed by
 * mc_opts_clear(). A field a verb does not accept keeps its default. */
typedef struct mc_opts {
    mc_verb_t verb;
    /* -f PATH (repeatable; also `-f a b c`): files or folders, in the order
     * given; folders are expanded by the loader, not here. */
    const char **files;
    size_t nfiles;
    const char *out_dir;      /* compile -o DIR; ca issue --out DIR */
    const char *state_dir;    /* sandbox verbs: --state, MC_DEFAULT_STATE_DIR */
    const char *trust_domain; /* compile: --trust-domain, MC_DEFAULT_TRUST_DOMAIN */
    int nodes;                /* compile/up --nodes N (1..1024); 0: not given */
    bool json;                /* status --json */
    bool force;               /* ca init --force */
    const char *ca_dir;       /* ca init DIR; ca issue --ca DIR */
    const char *id;           /* ca issue --id: a valid SPIFFE ID */
    int64_t ttl_s;            /* ca issue --ttl, seconds; MC_DEFAULT_TTL_S */
    char pod[254];            /* exec POD[.NS]: split at the last '.' */
    char pod_ns[64];          /* MC_DEFAULT_NAMESPACE when no .NS */
    char **cmd;               /* exec: the words after --, NULL-terminated */
    size_t ncmd;              /* >= 1 for exec */
    const char *component;    /* logs COMPONENT */
    const char *node;         /* node-agent --node NODE */
    const char *help;         /* set when the parse asked for help: the text */
} mc_opts_t;

/* Each returns the process exit code (MC_EXIT_*). They may print to stdout
 * (results) and stderr (errors, prefixed "meshctl: "). */
int mc_verb_compile(const mc_opts_t *o);
int mc_verb_analyze(const mc_opts_t *o);
int mc_verb_ca_init(const mc_opts_t *o);
int mc_verb_ca_issue(const mc_opts_t *o);
int mc_verb_up(const mc_opts_t *o);
int mc_verb_apply(const mc_opts_t *o);
int mc_verb_delete(const mc_opts_t *o);
int mc_verb_exec(const mc_opts_t *o);
int mc_verb_status(const mc_opts_t *o);
int mc_verb_logs(const mc_opts_t *o);
int mc_verb_down(const mc_opts_t *o);
int mc_verb_node_agent(const mc_opts_t *o);

#endif
