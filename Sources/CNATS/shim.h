#ifndef HERDWATCH_CNATS_SHIM_H
#define HERDWATCH_CNATS_SHIM_H
// The NATS C client (Debian's libnats-dev): connections, JetStream publish with acknowledgments,
// pull consumers. HerdwatchShipping's JetStream type is the only user; nothing else sees it.
#include <nats/nats.h>
#endif
