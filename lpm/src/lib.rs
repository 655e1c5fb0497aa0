//! Lock-free longest-prefix match on 256-bit W3IP addresses: one writer publishes new versions, any number of poll-mode readers look up without locks.
