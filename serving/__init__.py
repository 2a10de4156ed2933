"""SavedModel export in the TF Serving layout, serving clients, the face gallery."""
