/* version.h - the release this tree builds. */
#ifndef CONVERSA_VERSION_H
#define CONVERSA_VERSION_H

#define CONVERSA_VERSION "0.1.0"

#endif
