//! Gateway: kernel VTEP dataplane over rtnetlink and the gateway daemon.
