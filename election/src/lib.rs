//! Election: CFM (802.1ag CCM) wire format and the sans-IO leader election core.
