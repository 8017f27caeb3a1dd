#include "model/common/cli_flags.h"

#include <algorithm>
#include <utility>

#include "absl/flags/reflection.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

#ifndef FER_PROJECT_VERSION
#error "FER_PROJECT_VERSION must be defined by the build (CMake's PROJECT_VERSION)"
#endif

namespace fer::cli {
namespace {

// Top folders whose paths --helpfull shows from that folder on.
constexpr absl::string_view kTopFolders[] = {"absl", "client", "model", "server"};

absl::string_view Basename(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// Where the last top folder starts in file as a whole path component, or npos.
size_t TopFolderStart(absl::string_view file) {
  size_t best = absl::string_view::npos;
  for (absl::string_view top : kTopFolders) {
    const std::string component = absl::StrCat(top, "/");
    for (size_t at = file.find(component); at != absl::string_view::npos;
         at = file.find(component, at + 1)) {
      if (at != 0 && file[at - 1] != '/') continue;
      if (best == absl::string_view::npos || at > best) best = at;
    }
  }
  return best;
}

bool IsDashDash(absl::string_view token) { return token == "--"; }

}  // namespace

std::string ProjectVersion() { return FER_PROJECT_VERSION; }

std::string ShownFilename(absl::string_view file) {
  const size_t top = TopFolderStart(file);
  if (top != absl::string_view::npos) return std::string(file.substr(top));
  while (absl::ConsumePrefix(&file, "./") || absl::ConsumePrefix(&file, "../")) {
  }
  return std::string(file);
}

void ConfigureUsage(std::vector<std::string> help_files, std::string version_text) {
  auto shown = [files = std::move(help_files)](absl::string_view file) {
    const absl::string_view base = Basename(file);
    return std::find(files.begin(), files.end(), base) != files.end();
  };
  absl::FlagsUsageConfig config;
  config.contains_help_flags = shown;
  config.contains_helpshort_flags = shown;
  config.normalize_filename = [](absl::string_view file) { return ShownFilename(file); };
  config.version_string = [text = std::move(version_text)] { return absl::StrCat(text, "\n"); };
  absl::SetFlagsUsageConfig(config);
}

const absl::CommandLineFlag* FlagOfToken(absl::string_view token, bool* takes_next) {
  *takes_next = false;
  if (!absl::ConsumePrefix(&token, "-") || token.empty()) return nullptr;
  absl::ConsumePrefix(&token, "-");
  const size_t equals = token.find('=');
  const absl::string_view name = token.substr(0, equals);
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr && absl::StartsWith(name, "no")) {
    flag = absl::FindCommandLineFlag(name.substr(2));
    return flag != nullptr && flag->IsOfType<bool>() ? flag : nullptr;
  }
  *takes_next = flag != nullptr && equals == absl::string_view::npos && !flag->IsOfType<bool>();
  return flag;
}

std::vector<std::string> ForeignFlagsInArgs(int argc, char** argv, const FlagFilter& foreign) {
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view token = argv[i];
    if (IsDashDash(token)) break;  // the rest is positional
    bool takes_next = false;
    const absl::CommandLineFlag* flag = FlagOfToken(token, &takes_next);
    if (takes_next) ++i;
    if (flag != nullptr && foreign(*flag)) names.emplace_back(flag->Name());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<std::string> ForeignFlagsSet(const FlagFilter& foreign) {
  std::vector<std::string> names;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->CurrentValue() != flag->DefaultValue() && foreign(*flag)) {
      names.emplace_back(name);
    }
  }
  std::sort(names.begin(), names.end());  // GetAllFlags has no order
  return names;
}

std::string ForeignFlagsMessage(absl::string_view binary, absl::string_view command,
                                const std::vector<std::string>& names,
                                const std::vector<std::string>& users) {
  std::string message =
      absl::StrCat("--", absl::StrJoin(names, ", --"),
                   names.size() == 1 ? " is not a flag" : " are not flags", " of ", command);
  if (names.size() == 1 && !users.empty()) {
    absl::StrAppend(&message, " (it is for ", absl::StrJoin(users, ", "), ")");
  }
  absl::StrAppend(&message, "; see ", binary, " ", command, " --help");
  return message;
}

bool AsksForPlainHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view token = argv[i];
    if (IsDashDash(token)) break;
    if (!absl::ConsumePrefix(&token, "-")) continue;
    absl::ConsumePrefix(&token, "-");
    if (token == "help" || token == "helpshort") return true;
  }
  return false;
}

std::string DescribeFlags(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    const std::string value = flag->IsOfType<std::string>()
                                  ? absl::StrCat("\"", flag->DefaultValue(), "\"")
                                  : flag->DefaultValue();
    absl::StrAppend(&text, "    --", name, " (", flag->Help(), "); default: ", value, ";\n");
  }
  return text;
}

}  // namespace fer::cli
