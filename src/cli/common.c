#include "cli/cli.h"
#include "version.h"

#include <stdio.h>
#include <string.h>

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; ++i)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

int cli_version(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: conversa version\n\nPrints the version of this build.\n");
        return 0;
    }
    printf("conversa %s\n", CONVERSA_VERSION);
    return 0;
}
