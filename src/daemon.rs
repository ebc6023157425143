//! The daemon: wires scheduler, recorder, engine and notifiers together.
