// Runs programs for the end-to-end tests: a command to completion with its
// exit status, stdout and stderr, or a long-running server to stop later.
// POSIX only (posix_spawn), like the binaries under test.
#ifndef FER_TESTS_CLIENT_SUBPROCESS_H_
#define FER_TESTS_CLIENT_SUBPROCESS_H_

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace fer::client::test {

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Starts argv with stdout and stderr sent to files and extra "NAME=value"
// entries added to the environment. Returns the pid, or -1. The same path for
// both sends them to one file, in the order the program wrote them.
inline pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
                   const std::string& err_path, const std::vector<std::string>& extra_env = {}) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (err_path == out_path) {
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings(extra_env);
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> env;
  for (std::string& entry : env_strings) env.push_back(entry.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  return error == 0 ? pid : -1;
}

// Waits for pid for at most timeout; kills it past that. Returns the exit
// status, 128 + signal for a signal, or -1 when it had to be killed.
inline int WaitFor(pid_t pid, std::chrono::seconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0) return -1;
    if (std::chrono::steady_clock::now() > end) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv to completion; scratch_dir holds its captured output.
inline RunResult Run(const std::vector<std::string>& argv, const std::string& scratch_dir,
                     std::chrono::seconds timeout = std::chrono::seconds(300),
                     const std::vector<std::string>& extra_env = {}) {
  static int counter = 0;
  const std::string base = scratch_dir + "/run" + std::to_string(counter++);
  RunResult result;
  const pid_t pid = Spawn(argv, base + ".out", base + ".err", extra_env);
  if (pid < 0) {
    result.err = "cannot start " + argv[0];
    return result;
  }
  result.exit_code = WaitFor(pid, timeout);
  result.out = ReadText(base + ".out");
  result.err = ReadText(base + ".err");
  return result;
}

}  // namespace fer::client::test

#endif  // FER_TESTS_CLIENT_SUBPROCESS_H_
