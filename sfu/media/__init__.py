"""The forwarding plane: published tracks, subscriber slots and RTP munging.

Knows packets, tracks and subscribers only; never imports room, signaling, web or scheduler
code. All use of aiortc internals lives in `sfu.media.aiortc_adapter`.
"""
