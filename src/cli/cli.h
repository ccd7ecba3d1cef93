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
int cli_version(int argc, char **argv);

/** True when argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

#endif
