//! The one authenticator for every login (SSH, web, and later database and desktop fronts).
