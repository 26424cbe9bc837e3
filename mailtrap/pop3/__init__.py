"""POP3 (RFC 1939): the session state machine, wire encoding, maildrops and the listener."""
