"""Look at motion in 3D in a browser: the G1 (the project's MJCF, primitive shapes) with viser.

``python -m motion_vqvae.viewer --motion FILE`` plays a motion file; with ``--checkpoint`` the tokenizer's
reconstruction plays beside the reference; ``--tokens`` plays a token stream decoded by the checkpoint.
A time slider and the token timeline sit in the side panel; clicking a token plays the motion it decodes
to on a third robot. viser (what mjlab uses) serves the page, so it works over SSH port forwarding and
needs no GL on the server.
"""
