/* main.c - the conversa binary: dispatches to a subcommand (src/cli/). */
#include "cli/cli.h"
#include "version.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} main_commands[] = {
    {"serve", cli_serve, "serve the HTTP API"},
    {"migrate", cli_migrate, "apply, revert or list schema migrations"},
    {"seed", cli_seed, "load the demo company"},
    {"keys", cli_keys, "rotate the key of stored secrets, or make a new key"},
    {"token", cli_token, "create an API token for an integration"},
    {"fake-meta", cli_fake_meta, "run a stand-in WhatsApp Cloud API (tests, bench, demo)"},
    {"version", cli_version, "print the version"},
};

static void main_usage(FILE *out)
{
    fprintf(out, "usage: conversa <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i != sizeof(main_commands) / sizeof(main_commands[0]); ++i)
        fprintf(out, "  %-10s %s\n", main_commands[i].name, main_commands[i].summary);
    fprintf(out, "\nRun 'conversa <command> --help' for a command's options. Configuration comes from\n"
                 "environment variables; see the README's configuration table.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        main_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cli_version(argc - 1, argv + 1);
    for (size_t i = 0; i != sizeof(main_commands) / sizeof(main_commands[0]); ++i)
        if (strcmp(argv[1], main_commands[i].name) == 0)
            return main_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "conversa: unknown command '%s'\n\n", argv[1]);
    main_usage(stderr);
    return 2;
}
