#!/bin/sh
# Makes the host key once, takes the offsite user's public key from $AUTHORIZED_KEY (a public key, not
# a secret) and runs sshd in the foreground.
set -eu
[ -s /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
if [ -n "${AUTHORIZED_KEY:-}" ]; then
    printf '%s\n' "$AUTHORIZED_KEY" >/etc/ssh/authorized_keys/offsite
    chmod 0644 /etc/ssh/authorized_keys/offsite
fi
/usr/sbin/sshd -t
exec /usr/sbin/sshd -D -e
