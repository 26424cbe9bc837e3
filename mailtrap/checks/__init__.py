"""Message checks: HTML compatibility, links, spam score, authentication.

One module per check (:mod:`.html`, :mod:`.links`, :mod:`.spam`,
:mod:`.authentication`), each a pure function from a message (plus a
resolver or client given to it) to a result; :mod:`.service` reads
messages, runs the checks on demand and caches their results.
"""
