// The validity period of the server's own TLS certificate, checked at
// start-up: gRPC would load an expired or not-yet-valid certificate without a
// word, and every client would then fail its handshake. OpenSSL stays in the
// .cc file.
#ifndef FER_SERVER_CERTIFICATE_VALIDITY_H_
#define FER_SERVER_CERTIFICATE_VALIDITY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fer {

// How close to its end a certificate's validity makes start-up warn.
inline constexpr absl::Duration kCertificateExpiryWarning = absl::Hours(7 * 24);

struct CertificateValidity {
  std::string subject;  // OpenSSL's one-line form, "/CN=localhost"
  absl::Time not_before;
  absl::Time not_after;
};

// The validity of every certificate of a PEM chain, in file order (the
// server's own first). INVALID_ARGUMENT when pem holds no certificate OpenSSL
// can parse.
absl::StatusOr<std::vector<CertificateValidity>> ReadCertificateValidity(const std::string& pem);

// Checks chain at now. FAILED_PRECONDITION, naming the certificate and the
// date, when one is expired or not yet valid. Otherwise OK, and *warning (if
// not null) is set to a sentence when one expires within warn_within, else
// cleared.
absl::Status CheckCertificateValidity(const std::vector<CertificateValidity>& chain, absl::Time now,
                                      absl::Duration warn_within, std::string* warning);

}  // namespace fer

#endif  // FER_SERVER_CERTIFICATE_VALIDITY_H_
