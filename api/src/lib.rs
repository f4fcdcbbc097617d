//! Controller: resource model, replicated store, REST API, watch, client library.
