-- Failed-login counters per login factor: keys become FACTOR:user:NAME and FACTOR:source:ADDRESS
-- (FACTOR = password or publickey), and refusals by the login rules are counted for the audit
-- trail under refused:user:NAME and refused:source:ADDRESS. Counters from before were almost all
-- password guesses; they carry over as such, so a key login is never locked by them.
UPDATE login_failures SET key = 'password:' || key
    WHERE key LIKE 'user:%' OR key LIKE 'source:%';
