"""Who may use the service and what each may see: principals and their roles, the roles every endpoint and page
declares, and the door every HTTP request passes (closed by default)."""
