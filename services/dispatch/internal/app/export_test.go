package app

// OnFinishFailed sets a's test hook, told each failure of the moment of a
// send's FinishSend (the how-manieth in a row, the error) before it is
// tried again.
func OnFinishFailed(a *App, f func(n int, err error)) { a.finishFailed = f }
