#!/usr/bin/env bash
# Writes throw-away TLS material for the tests into DIR with openssl:
#   ca.pem/.key         a CA
#   server.pem/.key     a server certificate for localhost, 127.0.0.1 and ::1, signed by ca
#   client.pem/.key     a client certificate (CN fer-client), signed by ca
#   other_ca.pem/.key   a second CA that signed nothing here
#   rogue.pem/.key      a client certificate signed by other_ca
# Usage: tests/make_test_certificates.sh DIR
set -euo pipefail
cd "$1"
cat > server.ext <<EXT
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
EXT
for ca in ca other_ca; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=fer test ${ca}" \
    -keyout "${ca}.key" -out "${ca}.pem" 2>/dev/null
done
# sign NAME CN CA [EXTFILE]
sign() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 \
    ${4:+-extfile "$4"} -out "$1.pem" 2>/dev/null
  rm "$1.csr"
}
sign server localhost ca server.ext
sign client fer-client ca
sign rogue fer-client other_ca
