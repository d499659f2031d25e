/*
 * cli.c — meshctl's argument parser and verb dispatch (see cli.h).
 *
 * Two tables drive everything: FLAGS (every option meshctl knows, with the
 * bit that names it) and VERBS (per verb: the flags it accepts, those it
 * requires, its positional argument, whether it takes `-- CMD...`, the
 * function that runs it and its usage text). Adding a verb is adding a row
 * and a verbs.h prototype; adding a flag is a row, a bit and a case in
 * apply_flag().
 *
 * Invariant: after a successful parse every field of mc_opts_t that the verb
 * uses is either given and syntactically valid or at its documented default;
 * verbs never re-check syntax. Nothing here touches the file system.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tls.h"
#include "zm.h"

enum {
    F_FILE = 1u << 0,
    F_OUT = 1u << 1,
    F_NODES = 1u << 2,
    F_TD = 1u << 3,
    F_STATE = 1u << 4,
    F_JSON = 1u << 5,
    F_FORCE = 1u << 6,
    F_CA = 1u << 7,
    F_ID = 1u << 8,
    F_TTL = 1u << 9,
    F_NODE = 1u << 10,
};

typedef struct flag_spec {
    unsigned bit;
    const char *shrt; /* "-f", or NULL */
    const char *lng;  /* "--filename" */
    const char *meta; /* value placeholder for messages; NULL: a switch */
} flag_spec_t;

static const flag_spec_t FLAGS[] = {
    {F_FILE, "-f", "--filename", "PATH"}, {F_OUT, "-o", "--out", "DIR"},
    {F_NODES, NULL, "--nodes", "N"},      {F_TD, NULL, "--trust-domain", "TD"},
    {F_STATE, NULL, "--state", "DIR"},    {F_JSON, NULL, "--json", NULL},
    {F_FORCE, NULL, "--force", NULL},     {F_CA, NULL, "--ca", "DIR"},
    {F_ID, NULL, "--id", "SPIFFE-ID"},    {F_TTL, NULL, "--ttl", "DURATION"},
    {F_NODE, NULL, "--node", "NODE"},
};

typedef struct verb_spec {
    mc_verb_t verb;
    const char *name;       /* as typed: "compile", "ca issue" */
    unsigned flags;         /* accepted */
    unsigned required;      /* subset of flags */
    const char *positional; /* name of the one positional argument, or NULL */
    bool cmd;               /* takes `-- CMD...` (required) */
    int (*run)(const mc_opts_t *o);
    const char *usage;
} verb_spec_t;

#define STATE_HELP "  --state DIR     sandbox state directory (default " MC_DEFAULT_STATE_DIR ")\n"
#define FILE_HELP                                                                                  \
    "  -f PATH...      YAML file or folder (its *.yaml/*.yml files); repeatable,\n"                \
    "                  and several paths may follow one -f\n"

static const verb_spec_t VERBS[] = {
    {MC_VERB_COMPILE, "compile", F_FILE | F_OUT | F_NODES | F_TD, F_FILE | F_OUT, NULL, false,
     mc_verb_compile,
     "Usage: meshctl compile -f PATH... -o DIR [--nodes N] [--trust-domain TD]\n"
     "\n"
     "Compiles Kubernetes and Istio YAML into one libconfig file per node's ztunnel\n"
     "and per waypoint, written into DIR.\n"
     "\n" FILE_HELP "  -o, --out DIR   output directory\n"
     "  --nodes N       number of nodes (default: the nodes the pods name)\n"
     "  --trust-domain TD  SPIFFE trust domain (default " MC_DEFAULT_TRUST_DOMAIN ")\n"},
    {MC_VERB_ANALYZE, "analyze", F_FILE | F_TD, F_FILE, NULL, false, mc_verb_analyze,
     "Usage: meshctl analyze -f PATH... [--trust-domain TD]\n"
     "\n"
     "Validates Kubernetes and Istio YAML and prints every problem as\n"
     "file:line: message. Exit code 2 when there is at least one error.\n"
     "\n" FILE_HELP "  --trust-domain TD  SPIFFE trust domain (default " MC_DEFAULT_TRUST_DOMAIN
     ")\n"},
    {MC_VERB_CA_INIT, "ca init", F_FORCE, 0, "DIR", false, mc_verb_ca_init,
     "Usage: meshctl ca init DIR [--force]\n"
     "\n"
     "Creates a mesh CA in DIR (mode 0700): root-key.pem (0600), root-cert.pem\n"
     "(ECDSA P-256, self-signed, valid 10 years) and ca.pem, the trust bundle.\n"
     "\n"
     "  --force         replace an existing CA (certificates it issued stop\n"
     "                  being trusted)\n"},
    {MC_VERB_CA_ISSUE, "ca issue", F_CA | F_ID | F_OUT | F_TTL, F_CA | F_ID | F_OUT, NULL, false,
     mc_verb_ca_issue,
     "Usage: meshctl ca issue --ca DIR --id spiffe://TD/ns/NS/sa/SA --out DIR\n"
     "                        [--ttl DURATION]\n"
     "\n"
     "Issues a workload certificate (URI SAN = the SPIFFE ID) and writes\n"
     "cert.pem, key.pem and ca.pem into the out directory. Issuing again is a\n"
     "rotation: files are swapped atomically (see config/CA.md).\n"
     "\n"
     "  --ca DIR        CA directory made by 'meshctl ca init'\n"
     "  --id ID         spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT\n"
     "  -o, --out DIR   output directory (created with mode 0700)\n"
     "  --ttl DURATION  validity, e.g. 24h, 90m, 3600s, 7d, 1h30m (default 24h)\n"},
    {MC_VERB_UP, "up", F_FILE | F_STATE | F_NODES, F_FILE, NULL, false, mc_verb_up,
     "Usage: meshctl up -f PATH... [--state DIR] [--nodes N]\n"
     "\n"
     "Starts a sandbox mesh on this machine: every pod a network namespace, one\n"
     "ztunnel per node, one waypoint per waypoint Gateway. Needs root.\n"
     "\n" FILE_HELP STATE_HELP
     "  --nodes N       number of nodes (default: the nodes the pods name)\n"},
    {MC_VERB_APPLY, "apply", F_FILE | F_STATE, F_FILE, NULL, false, mc_verb_apply,
     "Usage: meshctl apply -f PATH... [--state DIR]\n"
     "\n"
     "Adds or changes resources of a running sandbox; the proxies reload their\n"
     "configuration without restarting.\n"
     "\n" FILE_HELP STATE_HELP},
    {MC_VERB_DELETE, "delete", F_FILE | F_STATE, F_FILE, NULL, false, mc_verb_delete,
     "Usage: meshctl delete -f PATH... [--state DIR]\n"
     "\n"
     "Removes the resources named in PATH from a running sandbox.\n"
     "\n" FILE_HELP STATE_HELP},
    {MC_VERB_EXEC, "exec", F_STATE, 0, "POD[.NS]", true, mc_verb_exec,
     "Usage: meshctl exec POD[.NS] [--state DIR] -- CMD [ARG...]\n"
     "\n"
     "Runs CMD inside the network namespace of a sandbox pod (namespace\n"
     "default " MC_DEFAULT_NAMESPACE "). The exit code is CMD's.\n"
     "\n" STATE_HELP},
    {MC_VERB_STATUS, "status", F_STATE | F_JSON, 0, NULL, false, mc_verb_status,
     "Usage: meshctl status [--json] [--state DIR]\n"
     "\n"
     "Shows the sandbox: pods (name, namespace, node, IP, ambient, netns), nodes,\n"
     "waypoints, and each proxy with its health.\n"
     "\n"
     "  --json          one JSON object instead of tables\n" STATE_HELP},
    {MC_VERB_LOGS, "logs", F_STATE, 0, "COMPONENT", false, mc_verb_logs,
     "Usage: meshctl logs COMPONENT [--state DIR]\n"
     "\n"
     "Prints the log of a sandbox component (a ztunnel, a waypoint or a pod's\n"
     "app; 'meshctl status' lists them).\n"
     "\n" STATE_HELP},
    {MC_VERB_DOWN, "down", F_STATE, 0, NULL, false, mc_verb_down,
     "Usage: meshctl down [--state DIR]\n"
     "\n"
     "Stops every process of the sandbox and removes the namespaces, links and\n"
     "files it created.\n"
     "\n" STATE_HELP},
    /* Internal, hence missing from TOP_USAGE: `up` runs one per node. */
    {MC_VERB_NODE_AGENT, "node-agent", F_STATE | F_NODE, F_STATE | F_NODE, NULL, false,
     mc_verb_node_agent,
     "Usage: meshctl node-agent --state DIR --node NODE\n"
     "\n"
     "Internal: the sandbox's per-node agent that 'meshctl up' starts inside the\n"
     "node's namespace. It runs the node's ztunnel, restarts it when it exits,\n"
     "and sends it the node's ambient pods whenever it (re)connects or on SIGHUP.\n"
     "\n" STATE_HELP "  --node NODE     the node to serve\n"},
};

static const char TOP_USAGE[] =
    "Usage: meshctl <verb> [options]\n"
    "\n"
    "zmesh's offline control plane: validates and compiles Kubernetes and Istio\n"
    "YAML into ztunnel and waypoint configuration, runs the mesh CA, and runs a\n"
    "whole mesh on this machine in network namespaces.\n"
    "\n"
    "Verbs:\n"
    "  compile   compile YAML into per-node ztunnel and per-waypoint configs\n"
    "  analyze   validate YAML and report every problem\n"
    "  ca init   create a mesh CA\n"
    "  ca issue  issue (or rotate) a workload certificate\n"
    "  up        start a sandbox mesh in network namespaces\n"
    "  apply     add or change resources of a running sandbox\n"
    "  delete    remove resources from a running sandbox\n"
    "  exec      run a command inside a sandbox pod\n"
    "  status    show the sandbox's pods, nodes, waypoints and proxies\n"
    "  logs      print a sandbox component's log\n"
    "  down      stop the sandbox and remove what it created\n"
    "\n"
    "Run 'meshctl <verb> --help' for a verb's options.\n"
    "Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid input.\n";

static const char CA_USAGE[] =
    "Usage: meshctl ca init DIR [--force]\n"
    "       meshctl ca issue --ca DIR --id spiffe://TD/ns/NS/sa/SA --out DIR [--ttl DURATION]\n"
    "\n"
    "Runs the mesh CA. Run 'meshctl ca init --help' or 'meshctl ca issue --help'.\n";

static const verb_spec_t *find_verb(mc_verb_t v)
{
    for (size_t i = 0; i < ZM_ARRAY_LEN(VERBS); i++)
        if (VERBS[i].verb == v)
            return &VERBS[i];
    return NULL;
}

static const verb_spec_t *find_verb_name(const char *group, const char *name)
{
    char full[64];
    snprintf(full, sizeof(full), "%s%s%s", group ? group : "", group ? " " : "", name);
    for (size_t i = 0; i < ZM_ARRAY_LEN(VERBS); i++)
        if (strcmp(VERBS[i].name, full) == 0)
            return &VERBS[i];
    return NULL;
}

const char *mc_cli_usage(mc_verb_t verb)
{
    const verb_spec_t *s = find_verb(verb);
    return s ? s->usage : TOP_USAGE;
}

int mc_parse_duration(const char *s, int64_t *out_s)
{
    if (!s || !*s)
        return -EINVAL;
    int64_t total = 0;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        int64_t n = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (n > MC_DURATION_MAX_S) /* keeps n * 10 far from overflow */
                return -ERANGE;
            n = n * 10 + (*p - '0');
        }
        int64_t unit;
        switch (*p) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -EINVAL; /* no unit, or an unknown one: "10", "5w", "1.5h" */
        }
        p++;
        if (n > MC_DURATION_MAX_S / unit || total + n * unit > MC_DURATION_MAX_S)
            return -ERANGE;
        total += n * unit;
    }
    if (total == 0)
        return -ERANGE;
    *out_s = total;
    return 0;
}

void mc_opts_clear(mc_opts_t *o)
{
    free(o->files);
    free(o->cmd);
    memset(o, 0, sizeof(*o));
}

__attribute__((format(printf, 3, 4))) static int fail(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Finds the flag an argument names; *value gets the text after '=' of a
 * `--long=value` form (NULL otherwise). */
static const flag_spec_t *find_flag(const char *a, const char **value)
{
    *value = NULL;
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    for (size_t i = 0; i < ZM_ARRAY_LEN(FLAGS); i++) {
        const flag_spec_t *f = &FLAGS[i];
        if ((f->shrt && !eq && strcmp(a, f->shrt) == 0) ||
            (strlen(f->lng) == n && strncmp(a, f->lng, n) == 0)) {
            *value = eq ? eq + 1 : NULL;
            return f;
        }
    }
    return NULL;
}

static int apply_flag(const verb_spec_t *vs, const flag_spec_t *f, const char *v, mc_opts_t *o,
                      char *msg, size_t len)
{
    const char *vn = vs->name, *fn = f->lng;
    if (v && !*v)
        return fail(msg, len, "%s: %s: empty value", vn, fn);
    switch (f->bit) {
    case F_FILE:
        if (strcmp(v, "-") == 0)
            return fail(msg, len, "%s: reading stdin (-f -) is not supported; give a path", vn);
        o->files[o->nfiles++] = v;
        return 0;
    case F_OUT:
        o->out_dir = v;
        return 0;
    case F_STATE:
        o->state_dir = v;
        return 0;
    case F_CA:
        o->ca_dir = v;
        return 0;
    case F_NODE:
        o->node = v;
        return 0;
    case F_JSON:
        o->json = true;
        return 0;
    case F_FORCE:
        o->force = true;
        return 0;
    case F_NODES: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || *end || end == v || n < 1 || n > 1024)
            return fail(msg, len, "%s: %s '%s': expected a number from 1 to 1024", vn, fn, v);
        o->nodes = (int)n;
        return 0;
    }
    case F_TD: {
        char uri[ZM_SPIFFE_ID_MAX + 16];
        zm_spiffe_id_t id;
        int n = snprintf(uri, sizeof(uri), "spiffe://%s/ns/a/sa/b", v);
        if (n < 0 || (size_t)n >= sizeof(uri) || zm_spiffe_parse(uri, &id) < 0)
            return fail(msg, len,
                        "%s: %s '%s': a trust domain is lower-case letters, digits, '.', "
                        "'-' and '_'",
                        vn, fn, v);
        o->trust_domain = v;
        return 0;
    }
    case F_ID: {
        zm_spiffe_id_t id;
        if (zm_spiffe_parse(v, &id) < 0)
            return fail(msg, len,
                        "%s: %s '%s': expected spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/"
                        "SERVICE-ACCOUNT",
                        vn, fn, v);
        o->id = v;
        return 0;
    }
    case F_TTL: {
        int r = mc_parse_duration(v, &o->ttl_s);
        if (r == -ERANGE)
            return fail(msg, len, "%s: %s '%s': must be more than 0 and at most 100 years", vn, fn,
                        v);
        if (r < 0)
            return fail(msg, len, "%s: %s '%s': expected a duration like 24h, 90m, 3600s or 7d", vn,
                        fn, v);
        return 0;
    }
    }
    return fail(msg, len, "%s: internal error: unhandled option %s", vn, fn);
}

/* exec's POD[.NS]: namespaces are DNS labels (no dots), pod names may hold
 * dots, so the namespace is whatever follows the last one. */
static int set_positional(const verb_spec_t *vs, const char *a, mc_opts_t *o, char *msg, size_t len)
{
    switch (vs->verb) {
    case MC_VERB_CA_INIT:
        o->ca_dir = a;
        return 0;
    case MC_VERB_LOGS:
        o->component = a;
        return 0;
    case MC_VERB_EXEC: {
        const char *dot = strrchr(a, '.');
        size_t pn = dot ? (size_t)(dot - a) : strlen(a);
        const char *ns = dot ? dot + 1 : MC_DEFAULT_NAMESPACE;
        if (pn == 0 || !*ns)
            return fail(msg, len, "%s: '%s': expected POD or POD.NAMESPACE", vs->name, a);
        if (pn >= sizeof(o->pod) || strlen(ns) >= sizeof(o->pod_ns))
            return fail(msg, len, "%s: '%s': name too long", vs->name, a);
        memcpy(o->pod, a, pn);
        o->pod[pn] = '\0';
        snprintf(o->pod_ns, sizeof(o->pod_ns), "%s", ns);
        return 0;
    }
    default:
        return fail(msg, len, "%s: unexpected argument '%s'", vs->name, a);
    }
}

/* Resolves argv[1] (and argv[2] for "ca") to a verb; *next is the first
 * argument after it. "help" and top-level --help set o->help. */
static int resolve_verb(int argc, char *const argv[], mc_opts_t *o, const verb_spec_t **out,
                        int *next, char *msg, size_t len)
{
    *out = NULL;
    if (argc < 2)
        return fail(msg, len, "no verb given");
    if (is_help(argv[1]) || (strcmp(argv[1], "help") == 0 && argc == 2)) {
        o->help = TOP_USAGE;
        return MC_PARSE_HELP;
    }
    bool help = strcmp(argv[1], "help") == 0;
    int i = help ? 2 : 1;
    const char *group = NULL, *name = argv[i];
    if (strcmp(name, "ca") == 0) {
        group = "ca";
        if ((i + 1 >= argc && help) || (i + 1 < argc && is_help(argv[i + 1]))) {
            o->help = CA_USAGE;
            return MC_PARSE_HELP;
        }
        if (i + 1 >= argc)
            return fail(msg, len, "ca: missing subcommand: init or issue");
        name = argv[++i];
    }
    const verb_spec_t *vs = find_verb_name(group, name);
    if (!vs)
        return group ? fail(msg, len, "ca: unknown subcommand '%s' (init or issue)", name)
                     : fail(msg, len, "unknown verb '%s'", name);
    *out = vs;
    o->verb = vs->verb;
    if (help) {
        o->help = vs->usage;
        return MC_PARSE_HELP;
    }
    *next = i + 1;
    return MC_PARSE_RUN;
}

static const char *flag_name(unsigned bit)
{
    for (size_t i = 0; i < ZM_ARRAY_LEN(FLAGS); i++)
        if (FLAGS[i].bit == bit)
            return FLAGS[i].shrt && bit == F_FILE ? FLAGS[i].shrt : FLAGS[i].lng;
    return "?";
}

static const char *flag_meta(unsigned bit)
{
    for (size_t i = 0; i < ZM_ARRAY_LEN(FLAGS); i++)
        if (FLAGS[i].bit == bit)
            return FLAGS[i].meta ? FLAGS[i].meta : "";
    return "";
}

int mc_cli_parse(int argc, char *const argv[], mc_opts_t *o, char *msg, size_t len)
{
    if (len)
        msg[0] = '\0';
    const verb_spec_t *vs;
    int i = 0;
    int r = resolve_verb(argc, argv, o, &vs, &i, msg, len);
    if (r != MC_PARSE_RUN)
        return r;
    /* --help anywhere before "--" wins over any error in the other words. */
    for (int j = i; j < argc && strcmp(argv[j], "--") != 0; j++) {
        if (is_help(argv[j])) {
            o->help = vs->usage;
            return MC_PARSE_HELP;
        }
    }
    o->state_dir = MC_DEFAULT_STATE_DIR;
    o->trust_domain = MC_DEFAULT_TRUST_DOMAIN;
    o->ttl_s = MC_DEFAULT_TTL_S;
    if ((vs->flags & F_FILE) && !(o->files = calloc((size_t)argc, sizeof(*o->files))))
        return -ENOMEM;

    unsigned seen = 0;
    bool after_file = false, have_pos = false, have_cmd = false;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            if (!vs->cmd)
                return fail(msg, len, "%s: unexpected '--'", vs->name);
            size_t n = (size_t)(argc - i - 1);
            if (!(o->cmd = calloc(n + 1, sizeof(*o->cmd))))
                return -ENOMEM;
            for (size_t k = 0; k < n; k++)
                o->cmd[k] = argv[i + 1 + (int)k];
            o->ncmd = n;
            have_cmd = true;
            break;
        }
        if (a[0] == '-' && a[1] != '\0') {
            const char *v;
            const flag_spec_t *f = find_flag(a, &v);
            if (!f || !(vs->flags & f->bit))
                return fail(msg, len, "%s: unknown option '%s'", vs->name, a);
            if ((seen & f->bit) && f->bit != F_FILE)
                return fail(msg, len, "%s: %s given twice", vs->name, f->lng);
            seen |= f->bit;
            if (f->meta && !v) {
                if (i + 1 >= argc)
                    return fail(msg, len, "%s: %s needs a value (%s)", vs->name, a, f->meta);
                v = argv[++i];
            } else if (!f->meta && v) {
                return fail(msg, len, "%s: %s takes no value", vs->name, f->lng);
            }
            if ((r = apply_flag(vs, f, v, o, msg, len)) < 0)
                return r;
            after_file = f->bit == F_FILE;
            continue;
        }
        if (after_file && !vs->positional) { /* `-f a b c`; FLAGS[0] is -f */
            if ((r = apply_flag(vs, &FLAGS[0], a, o, msg, len)) < 0)
                return r;
            continue;
        }
        if (!vs->positional || have_pos)
            return fail(msg, len, "%s: unexpected argument '%s'", vs->name, a);
        if ((r = set_positional(vs, a, o, msg, len)) < 0)
            return r;
        have_pos = true;
    }

    unsigned missing = vs->required & ~seen;
    if (missing) {
        unsigned bit = missing & -missing;
        return fail(msg, len, "%s: missing %s %s", vs->name, flag_name(bit), flag_meta(bit));
    }
    if (vs->positional && !have_pos)
        return fail(msg, len, "%s: missing %s", vs->name, vs->positional);
    if (vs->cmd && (!have_cmd || o->ncmd == 0))
        return fail(msg, len, "%s: missing the command: meshctl exec %s -- CMD [ARG...]", vs->name,
                    vs->positional);
    return MC_PARSE_RUN;
}

int mc_cli_run(int argc, char *const argv[], FILE *out, FILE *err)
{
    mc_opts_t o = {0};
    char msg[512];
    int rc, r = mc_cli_parse(argc, argv, &o, msg, sizeof(msg));
    if (r == MC_PARSE_HELP) {
        fputs(o.help, out);
        rc = MC_EXIT_OK;
    } else if (r == -ENOMEM) {
        fprintf(err, "meshctl: out of memory\n");
        rc = MC_EXIT_FAIL;
    } else if (r < 0 && argc < 2) {
        fputs(TOP_USAGE, err);
        rc = MC_EXIT_USAGE;
    } else if (r < 0) {
        const verb_spec_t *vs = find_verb(o.verb);
        fprintf(err, "meshctl: %s\nRun 'meshctl %s%s--help' for usage.\n", msg, vs ? vs->name : "",
                vs ? " " : "");
        rc = MC_EXIT_USAGE;
    } else {
        fflush(out);
        rc = find_verb(o.verb)->run(&o);
    }
    mc_opts_clear(&o);
    return rc;
}
