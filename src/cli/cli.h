/*
 * cli.h - the subcommands of the conversa binary. Each takes the arguments after its
 * name, prints its own --help, and returns the process exit status (0 ok, 1 failed,
 * 2 usage or configuration error).
 */
#ifndef CONVERSA_CLI_H
#define CONVERSA_CLI_H

int cli_serve(int argc, char **argv);
int cli_migrate(int argc, char **argv);
int cli_seed(int argc, char **argv);
/** `seed --scale`: generated data at scale; argv is the seed command's (it holds --scale or --help). */
int cli_seed_scale(int argc, char **argv);
/** `keys rotate|generate`: re-seal stored secrets with ENCRYPTION_KEY, or print a new key (src/cli/keys.c). */
int cli_keys(int argc, char **argv);
/** `token create`: an API token for an integration, shown once (src/cli/token.c). */
int cli_token(int argc, char **argv);
/** `fake-meta`: a stand-in for the WhatsApp Cloud API, for tests, the bench and the demo (src/cli/fake_meta.c). */
int cli_fake_meta(int argc, char **argv);
int cli_version(int argc, char **argv);

/** True when argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

#endif
