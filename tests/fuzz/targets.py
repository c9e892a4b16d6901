"""Every fuzz target, in the order a run takes them."""

from __future__ import annotations

from api_targets import FastPath, HttpApi, JsonBodies, XmlRpc
from fuzzlib import Target
from peer_targets import Handshake, PeerFrames, PeerMessages


def all_targets() -> list[Target]:
    return [
        PeerMessages(),
        PeerFrames(),
        Handshake(),
        JsonBodies(),
        FastPath(),
        XmlRpc(),
        HttpApi(),
    ]
