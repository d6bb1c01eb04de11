-- order.lua: the agents' order for every skill address, first = highest q.
return { "bob", "alice" }
