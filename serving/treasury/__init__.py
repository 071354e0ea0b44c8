"""Treasury: the cash forecast (today's and its recorded history) and the collection KPIs."""
