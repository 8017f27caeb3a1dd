#include "server/certificate_validity.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <ctime>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"

namespace fer {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};

absl::StatusOr<absl::Time> ToTime(const ASN1_TIME* time) {
  struct tm parts = {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1) {
    return absl::InvalidArgumentError("a certificate has an unreadable validity date");
  }
  return absl::FromTM(parts, absl::UTCTimeZone());
}

std::string Subject(X509* cert) {
  char buffer[256] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), buffer, sizeof(buffer));
  return buffer;
}

std::string Date(absl::Time time) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", time, absl::UTCTimeZone());
}

// "certificate 2 of 3 (/CN=fer test ca)"
std::string Which(const std::vector<CertificateValidity>& chain, size_t i) {
  return absl::StrCat("certificate ", i + 1, " of ", chain.size(), " (", chain[i].subject, ")");
}

}  // namespace

absl::StatusOr<std::vector<CertificateValidity>> ReadCertificateValidity(const std::string& pem) {
  if (pem.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError("certificate file too large");
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("cannot allocate an OpenSSL buffer");
  std::vector<CertificateValidity> chain;
  // PEM_read_bio_X509 skips blocks of other kinds and fails at the end of the
  // data (or at a block it cannot parse).
  for (;;) {
    std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert == nullptr) break;
    absl::StatusOr<absl::Time> not_before = ToTime(X509_get0_notBefore(cert.get()));
    absl::StatusOr<absl::Time> not_after = ToTime(X509_get0_notAfter(cert.get()));
    if (!not_before.ok()) return not_before.status();
    if (!not_after.ok()) return not_after.status();
    chain.push_back({Subject(cert.get()), *not_before, *not_after});
  }
  // The end of the data leaves an error on OpenSSL's per-thread queue, which
  // gRPC's own TLS code would later read as its own.
  ERR_clear_error();
  if (chain.empty()) return absl::InvalidArgumentError("holds no certificate OpenSSL can parse");
  return chain;
}

absl::Status CheckCertificateValidity(const std::vector<CertificateValidity>& chain, absl::Time now,
                                      absl::Duration warn_within, std::string* warning) {
  if (warning != nullptr) warning->clear();
  for (size_t i = 0; i < chain.size(); ++i) {
    if (now < chain[i].not_before) {
      return absl::FailedPreconditionError(
          absl::StrCat(Which(chain, i), " is not valid until ", Date(chain[i].not_before), " (now ",
                       Date(now), "; check the certificate and this clock)"));
    }
    if (now > chain[i].not_after) {
      return absl::FailedPreconditionError(
          absl::StrCat(Which(chain, i), " expired at ", Date(chain[i].not_after), "; renew it"));
    }
  }
  for (size_t i = 0; i < chain.size(); ++i) {
    const absl::Duration left = chain[i].not_after - now;
    if (left <= warn_within && warning != nullptr) {
      *warning = absl::StrCat(Which(chain, i), " expires at ", Date(chain[i].not_after), ", in ",
                              absl::FormatDuration(absl::Floor(left, absl::Minutes(1))),
                              "; clients will fail from then on: renew it");
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace fer
