-- An RDP endpoint's login security (issue 22): NULL or 'nla' is NLA (CredSSP, the default);
-- 'tls' is TLS without NLA, for servers that have none (xrdp 0.9). Both inside the pinned TLS.
ALTER TABLE asset_endpoints ADD COLUMN rdp_security TEXT
    CHECK (rdp_security IS NULL OR rdp_security IN ('nla', 'tls'));
