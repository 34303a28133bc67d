version 1.0
import "types.wdl" as types alias Person as Human
workflow w {
  input { Human p }
  call types.describe { input: p = p }
  output { String line = describe.line  Human older = describe.older }
}
