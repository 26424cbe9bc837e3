"""Which IP addresses Mailtrap may connect to on a message's behalf (relay MX hosts, link
check): public ones, unless told otherwise."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SHARED = ipaddress.ip_network("100.64.0.0/10")  # CGNAT (RFC 6598)
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv4 addresses inside IPv6 (RFC 6052)
# "This network" (RFC 1122): Linux connects 0.0.0.0 to this host, and no 0/8 address is
# anyone's server; Python counts the block as private, which the flag would allow.
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated, still tunnelled by sit0


def refusal(address: IPAddress, allow_private: bool = False) -> str | None:
    """Why Mailtrap must not connect to ``address``, or None when it may.

    An IPv6 address that carries an IPv4 address (mapped, 6to4, NAT64,
    Teredo) is judged by that IPv4 address too, so ``::ffff:127.0.0.1`` is
    loopback. With ``allow_private``, loopback, private, link-local and
    shared addresses are allowed; multicast, unspecified and reserved
    addresses never are.
    """
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = refusal(inner, allow_private)
            if reason is not None:
                return f"{reason} (inside {address})"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address (deprecated fec0::/10)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if isinstance(address, ipaddress.IPv4Address) and address in THIS_NETWORK:
        return "an address of 'this network' (0.0.0.0/8)"
    if address.is_reserved and not address.is_private:
        return "a reserved address"
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED:
        return "a shared (CGNAT) address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a reserved address"
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    # ::/96 holds ::1 and :: too, which are IPv6's own loopback and unspecified.
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
