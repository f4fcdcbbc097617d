//! Service node: BUM replication daemon and BFD responder.
