/*
 * cli.h — meshctl's command line: argv → mc_opts_t → one mc_verb_*().
 *
 * The parser is table-driven (cli.c): every verb lists the flags it accepts,
 * which of them are required, its positional arguments and its usage text.
 * It checks syntax only (durations, numbers, SPIFFE IDs, trust domains) and
 * never touches the file system, so it is cheap to test exhaustively.
 *
 * Accepted forms: `--flag VALUE`, `--flag=VALUE`, `-f VALUE`; `-f a b c`
 * (paths after -f up to the next option, for verbs without positional
 * arguments); `--help`/`-h` anywhere before `--`; `--` then the command
 * (exec only). `meshctl help [VERB...]` is `meshctl [VERB...] --help`.
 *
 * Threading: none; no global state.
 */
#ifndef MC_CLI_H
#define MC_CLI_H

#include <stdio.h>

#include "verbs.h"

/* mc_cli_parse() results. */
#define MC_PARSE_RUN 0  /* run o->verb */
#define MC_PARSE_HELP 1 /* print o->help to stdout, exit 0 */

/* Longest --ttl accepted: 100 years. */
#define MC_DURATION_MAX_S (100LL * 365 * 86400)

/* Parses argv (argv[0] is the program, argv[1] the verb) into *o, which the
 * caller zero-initialises and later releases with mc_opts_clear(). Returns
 * MC_PARSE_RUN, MC_PARSE_HELP, or -EINVAL for a usage error with a one-line
 * message in msg ("compile: unknown option '--x'"), or -ENOMEM. */
int mc_cli_parse(int argc, char *const argv[], mc_opts_t *o, char *msg, size_t msglen);

/* Frees what mc_cli_parse() allocated and zeroes *o. */
void mc_opts_clear(mc_opts_t *o);

/* The whole command: parse, print help (to out) or a usage error (to err,
 * exit 2), run the verb. Returns the process exit code. */
int mc_cli_run(int argc, char *const argv[], FILE *out, FILE *err);

/* Usage text of a verb (MC_VERB_NONE: the top-level summary). */
const char *mc_cli_usage(mc_verb_t verb);

/* Parses a duration: one or more <digits><unit> with unit s, m, h or d
 * ("24h", "90m", "1h30m", "7d"). Positive, at most MC_DURATION_MAX_S.
 * 0 ok, -EINVAL malformed, -ERANGE zero or too long. */
int mc_parse_duration(const char *s, int64_t *out_s);

#endif
