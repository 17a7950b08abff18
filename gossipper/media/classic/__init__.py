"""The classic per-call media path: RTP/RTCP per call on the event loop, files, pcap, SRTP.

Everything the scale engine leaves out (SPEC section 3): receive statistics, RTCP,
echo, WAV/raw playback, pcap replay and SRTP, one session per call.
"""
