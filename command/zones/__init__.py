"""The zones room: warning zones (from the warning system or drawn by staff), the roads
they close to routing, their end, and pre-positioning suggestions for them."""
