//! vtep-sync: OVSDB client, typed hardware_vtep tables and the per-switch reconciler.
