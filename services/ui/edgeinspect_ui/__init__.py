"""edgeinspect-ui: the live inspection page an operator keeps open all shift, and its JSON API."""
